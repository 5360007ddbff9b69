"""Tests of ``tracking``."""
