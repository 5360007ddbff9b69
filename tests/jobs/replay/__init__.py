"""Tests of ``jobs.replay``."""
