"""Tests of ``jobs.cleanup``."""
