"""Test controls of local_stripe: queued failures, queued hangs (a Stripe that does not
answer in time), hooks run before answering, request counters, and an optional per-endpoint
rate limit like Stripe's."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

# Endpoint names used by the request counters and fault filters.
LIST_SESSIONS = "list_checkout_sessions"
RETRIEVE_SESSION = "retrieve_checkout_session"
LIST_EVENTS = "list_events"
RETRIEVE_EVENT = "retrieve_event"
LIST_WEBHOOK_ENDPOINTS = "list_webhook_endpoints"
RETRIEVE_WEBHOOK_ENDPOINT = "retrieve_webhook_endpoint"
UPDATE_WEBHOOK_ENDPOINT = "update_webhook_endpoint"
ENDPOINTS = (LIST_SESSIONS, RETRIEVE_SESSION, LIST_EVENTS, RETRIEVE_EVENT, LIST_WEBHOOK_ENDPOINTS,
             RETRIEVE_WEBHOOK_ENDPOINT, UPDATE_WEBHOOK_ENDPOINT)


@dataclass
class _Fault:
    status: int
    endpoint: str | None


@dataclass
class _Hang:
    seconds: float
    endpoint: str | None


@dataclass
class Faults:
    """Test controls: queued failures, hooks run before answering, and request counters."""

    counts: Counter = field(default_factory=Counter)
    log: deque = field(default_factory=lambda: deque(maxlen=10_000))
    _queued: deque = field(default_factory=deque)
    _hooks: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hangs: deque = field(default_factory=deque)
    _released: threading.Event = field(default_factory=threading.Event)

    def fail_next(self, count: int = 1, *, status: int = 429, endpoint: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``endpoint``, or any) with ``status``."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {ENDPOINTS}")
        with self._lock:
            self._queued.extend(_Fault(status, endpoint) for _ in range(count))

    def hang_next(self, count: int = 1, *, seconds: float, endpoint: str | None = None) -> None:
        """Hold the next ``count`` requests (to ``endpoint``, or any) ``seconds`` before
        answering them: a Stripe that does not answer, whose client times out first (a held
        request is answered afterwards, as usual, unless ``reset`` lets it go earlier)."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {ENDPOINTS}")
        with self._lock:
            self._hangs.extend(_Hang(float(seconds), endpoint) for _ in range(count))

    def hold(self, endpoint: str) -> None:
        """Wait out the next queued hang for ``endpoint``, if any (called before answering)."""
        with self._lock:
            hang = next((h for h in self._hangs if h.endpoint in (None, endpoint)), None)
            if hang is None:
                return
            self._hangs.remove(hang)
            released = self._released
        released.wait(hang.seconds)

    @property
    def hangs_left(self) -> int:
        return len(self._hangs)

    @property
    def failures_left(self) -> int:
        return len(self._queued)

    def before(self, hook: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``hook(endpoint, params)`` before answering each request (e.g. to race a write)."""
        self._hooks.append(hook)

    def reset(self) -> None:
        """Stripe is healthy again: counters, queued failures and hangs, hooks cleared, and
        the requests held now answered at once."""
        with self._lock:
            self.counts.clear()
            self.log.clear()
            self._queued.clear()
            self._hooks.clear()
            self._hangs.clear()
            self._released.set()
            self._released = threading.Event()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(self, endpoint: str, method: str, path: str, params: dict[str, Any]) -> None:
        """Count a request and keep it in the log."""
        with self._lock:
            self.counts[endpoint] += 1
            self.log.append((method, path, params))

    def run_hooks(self, endpoint: str, params: dict[str, Any]) -> None:
        for hook in list(self._hooks):
            hook(endpoint, params)

    def take(self, endpoint: str) -> int | None:
        """The status of the next queued failure for ``endpoint`` (removed), or None."""
        with self._lock:
            for fault in self._queued:
                if fault.endpoint in (None, endpoint):
                    self._queued.remove(fault)
                    return fault.status
        return None


class RateLimiter:
    """Optional per-endpoint requests-per-second limit, like Stripe's (25/s in test mode)."""

    def __init__(self, per_second: int | None):
        self.per_second = per_second
        self._seen: dict[str, deque] = {}
        self._lock = threading.Lock()

    def allow(self, endpoint: str) -> bool:
        if not self.per_second:
            return True
        now = time.monotonic()
        with self._lock:
            window = self._seen.setdefault(endpoint, deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.per_second:
                return False
            window.append(now)
            return True
