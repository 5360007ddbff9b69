"""Tests of ``jobs.health``."""
