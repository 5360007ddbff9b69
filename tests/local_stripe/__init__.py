"""Tests of ``local_stripe``."""
