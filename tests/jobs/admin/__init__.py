"""Tests of ``jobs.admin``."""
