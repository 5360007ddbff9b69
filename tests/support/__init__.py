"""Helpers, fixtures and stand-ins the tests share."""
