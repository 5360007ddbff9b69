"""Tests of ``jobs``."""
