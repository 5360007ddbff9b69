"""Tests of ``jobs.alerting``."""
