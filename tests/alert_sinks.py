"""The HTTP sink alert tests deliver to; it lives in ``devharness.http_sink`` (the benchmarks
use it too)."""

from devharness.http_sink import HttpSink, Received  # noqa: F401 (re-exported)
