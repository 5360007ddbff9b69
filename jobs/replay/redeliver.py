"""Re-deliver a stored Stripe event to the app's webhook endpoint, as Stripe would.

The body is the event JSON (the text as received when the row kept it, else the stored
``payload``), signed with the FIRST secret of ``STRIPE_WEBHOOK_SECRET`` in a fresh
``Stripe-Signature`` header, POSTed to ``MONITOR_REPLAY_URL``. ``retry`` and
``sweep --replay`` both deliver through this module, so the app processes a re-delivery
through its ordinary path (signature check, ``webhook_event_begin``, ...).

    with Redeliverer.from_settings(source="retry") as redeliver:
        result = redeliver.deliver(event_body(row))
        if not result.reached:       # the endpoint did not answer: nothing happened there
            ...
        elif result.completed:       # 2xx and not a recorded failure
            ...

A ``Webhook-Monitor-Source`` header names who re-delivered (``retry``, ``sweep``); the
reference receiver records it on the attempt, any other endpoint ignores it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

import httpx

from core.errors import ConfigError
from core.outbound import is_loopback_url, read_capped, url_host
from tracking.signing import stripe_signature

SOURCE_HEADER = "Webhook-Monitor-Source"
SOURCES = ("retry", "sweep")
DEFAULT_TIMEOUT_S = 30.0  # Stripe itself waits up to 30 s for an endpoint's answer


def webhook_secrets(value: str | None) -> list[str]:
    """``STRIPE_WEBHOOK_SECRET`` as its list of secrets (comma-separated, blanks dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def event_body(row: Mapping[str, Any]) -> bytes:
    """The body to re-deliver for a ``webhook_events`` row: ``raw_payload`` (the text as
    received, kept when PostgreSQL could not store it as jsonb) when present, else ``payload``."""
    raw = row.get("raw_payload")
    if raw:
        return raw.encode("utf-8")
    payload = row["payload"]
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class DeliveryResult:
    """What the endpoint answered to one re-delivery.

    ``status`` is None when no HTTP answer came back (refused, reset, timed out); ``error``
    then says why. ``answer`` is the reply's JSON when it was JSON.
    """

    status: int | None
    answer: Any = None
    error: str | None = None
    elapsed_ms: int = 0
    # False when no connection could be made (refused, DNS, connect timeout): the endpoint
    # is down and certainly did nothing. True once connected, even if the answer timed out.
    connected: bool = True

    @property
    def reached(self) -> bool:
        """The endpoint answered (whatever the status)."""
        return self.status is not None

    @property
    def accepted(self) -> bool:
        """2xx: Stripe would stop delivering."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def completed(self) -> bool:
        """2xx and not a failure recorded with ``"retry": false`` (the error policy's answer
        to a payload that cannot be processed)."""
        if not self.accepted:
            return False
        return not (isinstance(self.answer, Mapping) and self.answer.get("status") == "failed")

    def describe(self) -> str:
        if self.status is None:
            return f"no answer: {self.error}"
        if isinstance(self.answer, Mapping) and self.answer.get("status"):
            return f"HTTP {self.status} {self.answer.get('status')}"
        return f"HTTP {self.status}"


class Redeliverer:
    """POSTs signed event bodies to one endpoint over one pooled HTTP client (thread-safe)."""

    def __init__(self, url: str, secret: str, *, source: str = "retry",
                 timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None,
                 max_connections: int = 10):
        if not url:
            raise ConfigError("MONITOR_REPLAY_URL is not set: set it to the app's webhook endpoint "
                              "(e.g. https://app.example.com/stripe/webhook) to re-deliver events")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"MONITOR_REPLAY_URL must be an https:// URL, not {url_host(url)!r}")
        if url.startswith("http://") and not is_loopback_url(url):
            # A re-delivery carries customers' data and a fresh, valid Stripe signature.
            raise ConfigError(f"MONITOR_REPLAY_URL must be https:// (re-deliveries carry customer data and a valid "
                              f"Stripe signature); plain http:// only to this machine (127.0.0.1, ::1, localhost), "
                              f"not to {url_host(url)}")
        if not secret:
            raise ConfigError("STRIPE_WEBHOOK_SECRET is not set: re-deliveries are signed with "
                              "its first secret, as the app's endpoint expects")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        self.url = url
        self.host = url_host(url)  # what messages, run records and alerts show of the URL
        self.secret = secret
        self.source = source
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.client = httpx.Client(timeout=timeout_s, transport=transport, limits=limits)

    @classmethod
    def from_settings(cls, settings=None, **kwargs) -> "Redeliverer":
        """From MONITOR_REPLAY_URL and the first STRIPE_WEBHOOK_SECRET; ConfigError when unset."""
        if settings is None:
            from core.settings import get_settings

            settings = get_settings()
        secrets = webhook_secrets(settings.STRIPE_WEBHOOK_SECRET)
        return cls(settings.MONITOR_REPLAY_URL or "", secrets[0] if secrets else "", **kwargs)

    def deliver(self, body: bytes, *, timestamp: int | None = None) -> DeliveryResult:
        """POST ``body`` signed now (or at ``timestamp``); never raises for network trouble.

        The signature carries wall-clock time on purpose: the endpoint checks it against its
        own clock (Stripe's 5-minute tolerance), whatever ``now`` the caller works with.
        """
        signed_at = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": stripe_signature(body, self.secret, timestamp=signed_at),
            SOURCE_HEADER: self.source,
            "User-Agent": "stripe-webhook-monitor (re-delivery)",
        }
        started = time.monotonic()
        try:
            with self.client.stream("POST", self.url, content=body, headers=headers) as response:
                raw, cut = read_capped(response)
        except httpx.HTTPError as exc:
            return DeliveryResult(None, error=f"{type(exc).__name__}: {exc}".rstrip(": "),
                                  elapsed_ms=_ms_since(started),
                                  connected=not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)))
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        try:
            answer = None if cut else json.loads(text)
        except ValueError:
            answer = None
        if answer is None:
            answer = text[:500] or None
        return DeliveryResult(response.status_code, answer, elapsed_ms=_ms_since(started))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Redeliverer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
