"""Tests of ``migrations``."""
