"""Reading Stripe: the one place jobs talk to the Stripe API (reconciliation, cleanup).

Built on the official ``stripe`` library (``StripeClient``), pointed at ``STRIPE_API_BASE``
when set. Every HTTP request goes through :class:`PacedHTTPClient`, handed to the client as
its transport, which

- paces requests well under Stripe's limit (25 requests/s in test mode and per endpoint by
  default, https://docs.stripe.com/rate-limits), so a 100k-session run never trips it;
- backs off and repeats a request answered 429: the library retries connection errors, 409
  and 5xx (``max_network_retries``) but not a plain 429;
- counts requests and list pages, which the reconciliation run shows as live progress;
- waits at most ``STRIPE_TIMEOUT_SECONDS`` (20) for an answer, not the library's 80 s: a
  timeout is retried like a 500, so a Stripe that hangs fails the job within a bound.

Lists are walked page by page (100 per page, ``starting_after`` the last id), lazily, so a
window of any size streams through in constant memory.

Failures become :class:`StripeUnavailable` (a ``JobFailed``, exit 1) with one line saying
what went wrong; a missing key is a ``ConfigError`` (exit 2) before anything runs.
Sessions come back as plain dicts in Stripe's JSON shape.
"""

from __future__ import annotations

import random
import re
import threading
import time
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import stripe
from stripe._http_client import HTTPClient, new_default_http_client

from core.errors import ConfigError, JobFailed
from core.settings import Settings, get_settings, live_key_destination_problem
from core.stripe_api import API_VERSION

LIST_PAGE_SIZE = 100  # Stripe's maximum page size: the fewest requests for a window
DEFAULT_REQUESTS_PER_SECOND = 15.0  # well under the 25/s test-mode limit
DEFAULT_NETWORK_RETRIES = 3
# Longest wait for one answer (STRIPE_TIMEOUT_SECONDS' default); the library's own is 80 s,
# which with its retries let a hanging Stripe hold a job for over five minutes per request.
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_RATE_LIMIT_RETRIES = 6
DEFAULT_RATE_LIMIT_BACKOFF_S = 1.0
MAX_RATE_LIMIT_BACKOFF_S = 30.0
_LIST_PATHS = frozenset({"/v1/checkout/sessions", "/v1/events"})


class StripeUnavailable(JobFailed):
    """Stripe could not be read completely (unreachable, key refused, retries exhausted)."""


class StripeKeyRejected(StripeUnavailable, ConfigError):
    """Stripe refused the API key (401) or its permissions (403).

    A configuration error (exit 2: fix STRIPE_API_KEY), not a failed run: retrying the same
    command cannot help. Still a StripeUnavailable, so every job stops asking Stripe at once.
    """


class StripePermissionMissing(StripeKeyRejected):
    """The key is good but may not do this one thing (403: a restricted key without it)."""


class PacedHTTPClient(HTTPClient):
    """The stripe library's transport, wrapped: pacing, 429 backoff and request counting."""

    name = "paced"

    def __init__(self, inner: HTTPClient | None = None, *,
                 requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
                 rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
                 rate_limit_backoff_s: float = DEFAULT_RATE_LIMIT_BACKOFF_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__()
        # The library's transport (requests), with a bounded wait: the connection, then the
        # gap between bytes read; a timeout is an APIConnectionError the library retries.
        self._inner = inner or new_default_http_client(timeout=timeout_s)
        self._interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
        self._rate_limit_retries = rate_limit_retries
        self._backoff_s = rate_limit_backoff_s
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.requests_made = 0
        self.pages_read = 0
        self.rate_limited = 0

    def _pace(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            time.sleep(slot - now)

    def _backoff(self, attempt: int, headers) -> float:
        retry_after = (headers or {}).get("retry-after") if headers is not None else None
        try:
            if retry_after is not None:
                return min(float(retry_after), MAX_RATE_LIMIT_BACKOFF_S)
        except ValueError:
            pass
        delay = min(self._backoff_s * (2 ** (attempt - 1)), MAX_RATE_LIMIT_BACKOFF_S)
        return delay * (0.5 + random.random() / 2)  # jitter: concurrent clients spread out

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        attempt = 0
        while True:
            self._pace()
            with self._lock:
                self.requests_made += 1
            content, status, response_headers = self._inner.request(method, url, headers, post_data)
            if status == 429 and attempt < self._rate_limit_retries:
                attempt += 1
                with self._lock:
                    self.rate_limited += 1
                time.sleep(self._backoff(attempt, response_headers))
                continue
            if status == 200 and urlsplit(url).path in _LIST_PATHS:
                with self._lock:
                    self.pages_read += 1
            return content, status, response_headers

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):
        raise NotImplementedError("streaming responses are not used by this project")

    def close(self) -> None:
        self._inner.close()


class StripeGateway:
    """Read access to Checkout Sessions (and Events) with pacing, retries and counters."""

    def __init__(self, api_key: str, *, api_base: str | None = None,
                 requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
                 max_network_retries: int = DEFAULT_NETWORK_RETRIES,
                 rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
                 rate_limit_backoff_s: float = DEFAULT_RATE_LIMIT_BACKOFF_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        problem = live_key_destination_problem(api_key, api_base)
        if problem:  # settings check this too; a gateway built by hand must not skip it
            raise ConfigError(f"STRIPE_API_BASE: {problem}")
        self.api_base = (api_base or stripe.DEFAULT_API_BASE).rstrip("/")
        self.max_network_retries = max_network_retries
        self.rate_limit_retries = rate_limit_retries
        self.timeout_s = timeout_s
        self.transport = PacedHTTPClient(requests_per_second=requests_per_second,
                                         rate_limit_retries=rate_limit_retries,
                                         rate_limit_backoff_s=rate_limit_backoff_s, timeout_s=timeout_s)
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": self.api_base},
            max_network_retries=max_network_retries, http_client=self.transport,
            # Objects come back in the version the code is written against, not in the
            # account's default version or the library's.
            stripe_version=API_VERSION)

    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self.transport.requests_made

    @property
    def pages_read(self) -> int:
        """List pages received so far."""
        return self.transport.pages_read

    def iter_checkout_sessions(self, created_gte: int, created_lt: int) -> Iterator[dict[str, Any]]:
        """Every Checkout Session with ``created_gte <= created < created_lt``, newest first.

        Pages of 100 are fetched as the iterator is consumed, so memory stays flat however
        many sessions the window holds.
        """
        params = {"created": {"gte": int(created_gte), "lt": int(created_lt)},
                  "limit": LIST_PAGE_SIZE}
        yield from self._iterate("/v1/checkout/sessions", params, "list Checkout Sessions")

    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any] | None:
        """The session as Stripe has it now, or None when Stripe says it does not exist."""
        try:
            return self._client.raw_request("get", f"/v1/checkout/sessions/{quote(session_id, safe='')}").data
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return None
            raise self._failure(exc, f"retrieve Checkout Session {session_id}") from None
        except stripe.StripeError as exc:
            raise self._failure(exc, f"retrieve Checkout Session {session_id}") from None

    def iter_events(self, created_gte: int, created_lt: int, *, types: list[str] | None = None,
                    type: str | None = None,
                    delivery_success: bool | None = None) -> Iterator[dict[str, Any]]:
        """Events in the window (Stripe keeps 30 days), newest first.

        ``types``: at most 20 exact event types; ``type``: one type or a group ending in
        ``*`` (Stripe takes one of the two, https://docs.stripe.com/api/events/list).
        """
        params: dict[str, Any] = {"created": {"gte": int(created_gte), "lt": int(created_lt)},
                                  "limit": LIST_PAGE_SIZE}
        if types:
            params["types"] = list(types)
        if type:
            params["type"] = type
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        yield from self._iterate("/v1/events", params, "list events")

    def iter_webhook_endpoints(self) -> Iterator[dict[str, Any]]:
        """Every webhook endpoint of the account (https://docs.stripe.com/api/webhook_endpoints/list).

        A restricted key needs the "Webhook Endpoints: Read" permission for it."""
        yield from self._iterate("/v1/webhook_endpoints", {"limit": LIST_PAGE_SIZE}, "list webhook endpoints")

    def _iterate(self, path: str, params: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """Every object of a list, page after page (``starting_after`` the last id seen).

        Pages come through the library's ``raw_request`` (same transport, retries and
        errors) as plain JSON: building StripeObjects for them cost ~1.5 ms per session,
        more than the request itself for a 100k-session window, and callers want dicts.
        """
        page_params = dict(params)
        try:
            while True:
                page = self._client.raw_request("get", path, **page_params).data
                objects = page.get("data") or []
                yield from objects
                if not page.get("has_more") or not objects:
                    return
                page_params["starting_after"] = objects[-1]["id"]
        except stripe.StripeError as exc:
            raise self._failure(exc, what) from None

    def _failure(self, exc: stripe.StripeError, what: str) -> StripeUnavailable:
        """One line naming what failed, why, and what to check."""
        status = getattr(exc, "http_status", None)
        message = (exc.user_message or str(exc) or type(exc).__name__).strip().splitlines()[0]
        if isinstance(exc, stripe.AuthenticationError):
            return StripeKeyRejected(f"Stripe refused the API key ({status}: {message}); "
                                     "check STRIPE_API_KEY")
        if isinstance(exc, stripe.PermissionError):
            return StripePermissionMissing(f"the Stripe key may not {what} ({status}: {message}); "
                                     "give the key read access to Checkout Sessions and Events")
        if isinstance(exc, stripe.RateLimitError):
            return StripeUnavailable(f"Stripe kept answering 429 (rate limited) to {what} after "
                                     f"{self.rate_limit_retries} retries; try again later")
        if isinstance(exc, stripe.APIConnectionError) and _timed_out(exc):
            return StripeUnavailable(f"Stripe did not answer within {self.timeout_s:g} s to {what}, "
                                     f"{self.max_network_retries + 1} tries (STRIPE_TIMEOUT_SECONDS); "
                                     f"check Stripe's status and the network to {self.api_base}")
        if isinstance(exc, stripe.APIConnectionError):
            return StripeUnavailable(f"cannot reach Stripe at {self.api_base} to {what} after "
                                     f"{self.max_network_retries} retries ({_network_reason(exc)}); "
                                     "check the network and STRIPE_API_BASE")
        if status is not None and status >= 500:
            return StripeUnavailable(f"Stripe answered {status} to {what} after "
                                     f"{self.max_network_retries} retries: {message}")
        return StripeUnavailable(f"Stripe answered {status or 'an error'} to {what}: {message}")


def gateway_from_settings(settings: Settings | None = None, **options: Any) -> StripeGateway:
    """A gateway for ``STRIPE_API_KEY`` / ``STRIPE_API_BASE``; ConfigError when no key is set.

    ``options`` are passed to :class:`StripeGateway` (pacing and retry knobs).
    """
    settings = settings or get_settings()
    if not settings.STRIPE_API_KEY:
        raise ConfigError("STRIPE_API_KEY is not set: reading Stripe needs a secret or "
                          "restricted key with read access to Checkout Sessions")
    base = settings.STRIPE_API_BASE
    if base and urlsplit(base).scheme not in ("http", "https"):
        raise ConfigError(f"STRIPE_API_BASE must be an http(s) URL, not {base!r}")
    options.setdefault("timeout_s", float(settings.STRIPE_TIMEOUT_SECONDS))
    return StripeGateway(settings.STRIPE_API_KEY, api_base=base, **options)


def _timed_out(exc: BaseException) -> bool:
    """Whether the library's connection error is a timeout (no answer in time)."""
    cause = exc.__cause__
    return (cause is not None and "Timeout" in type(cause).__name__) or "Timeout" in str(exc)


def _network_reason(exc: BaseException) -> str:
    """The socket-level cause inside the library's long connection-error text."""
    text = str(exc)
    for pattern in (r"\[Errno -?\d+\] ([^\]\)\"']+)", r"Network error: (\w+)"):
        found = re.search(pattern, text)
        if found:
            return found.group(1).strip()
    return "no answer"
