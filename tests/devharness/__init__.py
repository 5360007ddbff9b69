"""Tests of ``devharness``."""
