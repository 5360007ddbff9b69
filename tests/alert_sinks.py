"""The alert channels' test server, for tests (it lives in devharness, which the fault
bench uses too)."""

from devharness.sinks import HttpSink, Received  # noqa: F401
