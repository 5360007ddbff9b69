"""Tests of ``jobs.schedule``."""
