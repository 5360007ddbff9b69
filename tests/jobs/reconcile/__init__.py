"""Tests of ``jobs.reconcile``."""
