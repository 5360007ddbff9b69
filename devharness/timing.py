"""Timing for benchmarks: the median of several runs after a warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(function: Callable[[], object], runs: int) -> float:
    """Run ``function`` once to warm up (plans, buffers, pools), then ``runs`` times; the
    median wall time in milliseconds."""
    function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)
