"""Tests of ``queries``."""
