"""The error policy, declared once: categories, recovery actions, alert levels, the retry
schedule per category, and the classifier that maps a failure to them.

The tracker and the reference receiver classify with ``classify(exc)``; the SQL function
``webhook_event_fail`` takes the result (category, retryable, recovery action, alert level)
and plans ``next_retry_at`` from the ``error_retry_policy`` view, which
``migrations/functions/tracking.sql`` defines with the values of ``POLICY`` below (a test
keeps the two, and the database's CHECKs, equal). Handlers in other languages pass a
category (and whether a retry can help) to the same function and get the same plan.
docs/tracking.md shows the table.

    result = classify(exc)          # walks exc, its __cause__ and __context__
    result.category, result.retryable, result.recovery_action, result.alert_level
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterator

CATEGORIES = ("network", "validation", "database", "stripe", "unknown")
ALERT_LEVELS = ("info", "warning", "critical")
# Who ran an attempt (webhook_event_attempts.source).
ATTEMPT_SOURCES = ("delivery", "retry", "sweep")
ATTEMPT_OUTCOMES = ("processing", "completed", "failed", "superseded")

# What happens next to a failure, in words a person acts on.
RECOVERY_ACTIONS: dict[str, str] = {
    "retry_soon": "retried automatically within seconds to minutes (the database recovers on its own)",
    "retry_with_backoff": "retried automatically, waiting longer after each failure",
    "fix_and_retry": "needs a person: fix the app or the data, then Retry now (the payload cannot be processed as it is)",
    "check_stripe_access": "needs a person: check the Stripe key, its mode and permissions, then Retry now",
    "investigate": "needs a person: the automatic retries are used up; read the error, fix, then Retry now",
}


class PayloadError(ValueError):
    """The payload can never be processed as it is: a missing or invalid field, an unknown
    registration, an unsupported shape or API version. Category ``validation``: answered 2xx
    with ``"retry": false`` and left for a person. Handlers raise it (or a subclass)."""


@dataclass(frozen=True)
class CategoryPolicy:
    """How one category is retried and surfaced."""

    category: str
    # Wait before automatic retry n (after failed attempt n); the last delay repeats.
    retry_delays_s: tuple[int, ...]
    # No automatic retry is planned once this many attempts have failed.
    max_attempts: int
    # Recovery action and alert level while an automatic retry is planned.
    recovery_action: str
    alert_level: str
    # When no automatic retry is planned (a permanent error, or the attempts are used up).
    recovery_action_exhausted: str

    def delay(self, attempt: int) -> timedelta | None:
        """The wait before the retry after failed attempt ``attempt`` (1-based), or None."""
        if not self.retry_delays_s or attempt >= self.max_attempts:
            return None
        index = min(max(attempt, 1), len(self.retry_delays_s)) - 1
        return timedelta(seconds=self.retry_delays_s[index])


POLICY: dict[str, CategoryPolicy] = {policy.category: policy for policy in (
    CategoryPolicy("network", (60, 300, 1800, 7200, 21600), 8, "retry_with_backoff", "warning", "investigate"),
    CategoryPolicy("database", (10, 30, 60, 300, 900), 10, "retry_soon", "info", "investigate"),
    CategoryPolicy("stripe", (60, 300, 1800, 7200), 6, "retry_with_backoff", "warning", "check_stripe_access"),
    CategoryPolicy("validation", (), 1, "fix_and_retry", "critical", "fix_and_retry"),
    CategoryPolicy("unknown", (60, 600, 3600), 4, "retry_with_backoff", "warning", "investigate"),
)}
EXHAUSTED_ALERT_LEVEL = "critical"  # no automatic retry will fix it: a person must look


@dataclass(frozen=True)
class Classification:
    """What the classifier decided for one failure."""

    category: str
    retryable: bool  # can an automatic retry help?
    reason: str  # the rule that matched, e.g. "SQLSTATE 40P01 (DeadlockDetected)"

    @property
    def recovery_action(self) -> str:
        policy = POLICY[self.category]
        return policy.recovery_action if self.retryable and policy.retry_delays_s else policy.recovery_action_exhausted

    @property
    def alert_level(self) -> str:
        policy = POLICY[self.category]
        return policy.alert_level if self.retryable and policy.retry_delays_s else EXHAUSTED_ALERT_LEVEL

    @property
    def transient(self) -> bool:
        """The receiver answers 5xx (Stripe retries) exactly for these."""
        return self.retryable and bool(POLICY[self.category].retry_delays_s)


@dataclass(frozen=True)
class Plan:
    """The plan after a failed attempt (what ``webhook_event_fail`` stores)."""

    next_retry_at: datetime | None
    recovery_action: str
    alert_level: str


def plan(category: str, *, retryable: bool, attempt: int, failed_at: datetime) -> Plan:
    """The next automatic retry after failed attempt ``attempt`` (the SQL function's rule)."""
    policy = POLICY[category if category in POLICY else "unknown"]
    delay = policy.delay(attempt) if retryable else None
    if delay is None:
        return Plan(None, policy.recovery_action_exhausted, EXHAUSTED_ALERT_LEVEL)
    return Plan(failed_at + delay, policy.recovery_action, policy.alert_level)


# --- the classifier ------------------------------------------------------------------------

# SQLSTATE -> (category, retryable); looked up by the full code first, then by its class (the
# first two characters). https://www.postgresql.org/docs/current/errcodes-appendix.html
SQLSTATES: dict[str, tuple[str, bool]] = {
    "40P01": ("database", True),    # deadlock_detected
    "40001": ("database", True),    # serialization_failure
    "40": ("database", True),       # transaction rollback
    "08": ("database", True),       # connection exception
    "53300": ("database", True),    # too_many_connections
    "53": ("database", True),       # insufficient resources (disk full, out of memory)
    "57014": ("database", True),    # query_canceled (statement_timeout)
    "57P01": ("database", True),    # admin_shutdown (pg_terminate_backend, restart)
    "57P02": ("database", True),    # crash_shutdown
    "57P03": ("database", True),    # cannot_connect_now (starting up)
    "55P03": ("database", True),    # lock_not_available (lock_timeout)
    "58": ("database", True),       # system error (I/O)
    "42": ("database", True),       # schema out of date (undefined table/column): heals once migrated
    # A concurrent writer inserted the same key first; a retry sees its row.
    "23505": ("database", True),
    # The payload's values do not fit the schema: retrying the same payload cannot help.
    "23": ("validation", False),    # not-null, foreign key, check violations
    "22": ("validation", False),    # data exceptions: invalid text, out of range, \u0000
    "54": ("validation", False),    # program limit exceeded (nesting too deep, too large)
}


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def _database_rule(exc: BaseException) -> tuple[str, bool, str] | None:
    import psycopg
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.DBAPIError) and _sqlstate(exc.orig) is not None:
        return None  # judged by the driver's error (.orig), which the chain walk visits next
    code = _sqlstate(exc)
    if code:
        for key in (code, code[:2]):
            if key in SQLSTATES:
                category, retryable = SQLSTATES[key]
                return category, retryable, f"SQLSTATE {code} ({type(exc).__name__})"
        return "database", True, f"SQLSTATE {code} ({type(exc).__name__})"
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return "database", True, f"no connection ({type(exc).__name__})"
    if isinstance(exc, sa.exc.TimeoutError):
        return "database", True, "connection pool exhausted"
    if isinstance(exc, (psycopg.Error, sa.exc.SQLAlchemyError)):
        return "database", True, type(exc).__name__
    return None


def _stripe_rule(exc: BaseException) -> tuple[str, bool, str] | None:
    import stripe

    if not isinstance(exc, stripe.StripeError):
        return None
    name = type(exc).__name__
    if isinstance(exc, (stripe.RateLimitError, stripe.APIConnectionError)):
        return "stripe", True, name
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError, stripe.InvalidRequestError,
                        stripe.CardError, stripe.SignatureVerificationError, stripe.IdempotencyError)):
        return "stripe", False, name
    status = getattr(exc, "http_status", None)
    if isinstance(exc, stripe.APIError) or status is None or status >= 500 or status == 429:
        return "stripe", True, f"{name} (HTTP {status})" if status else name
    return "stripe", False, f"{name} (HTTP {status})"


def _http_rule(exc: BaseException) -> tuple[str, bool, str] | None:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return "network", status in (408, 425, 429) or status >= 500, f"HTTP {status}"
    if isinstance(exc, httpx.TransportError):
        return "network", True, type(exc).__name__
    try:
        import requests
    except ImportError:  # pragma: no cover - requests comes with stripe's dependencies
        return None
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return "network", status in (408, 425, 429) or status >= 500, f"HTTP {status}"
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return "network", True, type(exc).__name__
    return None


def _socket_rule(exc: BaseException) -> tuple[str, bool, str] | None:
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, socket.herror, ssl.SSLError)):
        return "network", True, type(exc).__name__
    return None


def _payload_rule(exc: BaseException) -> tuple[str, bool, str] | None:
    if isinstance(exc, PayloadError):
        return "validation", False, type(exc).__name__
    return None


def _generic_value_rule(exc: BaseException) -> tuple[str, bool, str] | None:
    # A handler reading a field the payload lacks (KeyError), or a value it cannot parse
    # (ValueError, JSONDecodeError): the same payload fails the same way every time.
    if isinstance(exc, (ValueError, LookupError)):
        return "validation", False, type(exc).__name__
    return None


Rule = Callable[[BaseException], "tuple[str, bool, str] | None"]
# Tried in order on each exception of the chain, outermost first; the first match decides.
RULES: tuple[Rule, ...] = (_payload_rule, _stripe_rule, _database_rule, _http_rule, _socket_rule)
# Tried only when no specific rule matched anywhere in the chain: a ValueError raised
# because of a deadlock is still a deadlock.
FALLBACK_RULES: tuple[Rule, ...] = (_generic_value_rule,)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its ``__cause__`` (or ``__context__``) and theirs, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error here
        if isinstance(orig, BaseException) and id(orig) not in seen and current.__cause__ is not orig:
            yield from exception_chain(orig)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def classify(exc: BaseException) -> Classification:
    """Category, whether a retry can help, recovery action and alert level of a failure."""
    for rules in (RULES, FALLBACK_RULES):
        for link in exception_chain(exc):
            for rule in rules:
                found = rule(link)
                if found:
                    category, retryable, reason = found
                    return Classification(category, retryable, reason)
    return Classification("unknown", True, type(exc).__name__)
