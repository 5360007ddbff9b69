"""The reference Stripe webhook receiver: ``uvicorn tracking.receiver:app``.

``POST /stripe/webhook`` checks the ``Stripe-Signature`` header on the raw body, records the
event through the tracking functions, applies the four Checkout Session events to the
registrations (the registration change and the 'completed' mark commit together), and
answers only once the outcome is in the database. ``GET /healthz`` checks the database.

Answers follow the error policy (``core.error_policy``; docs/tracking.md has the full table):
200 processed, ignored or duplicate; 200 ``{"status": "failed", "retry": false}`` for a
signed delivery that can never be processed as it is (recorded ``failed``, category
``validation`` or a permanent Stripe error: Stripe stops at once, the monitor keeps it for a
person); 400 bad signature (nothing written); 408 the body did not arrive in time; 409
another delivery of the event is being processed (Stripe retries later); 413 body too
large; 500 a transient failure (recorded ``failed`` with a planned retry, Stripe retries
too); 503 the database is unavailable. Error replies carry an ``error_id`` that is also in
the log line saying what happened, never SQL, parameters or tracebacks.

Every delivery with a valid signature leaves a row, even a body that is not a JSON event or
that PostgreSQL cannot store as jsonb (``\u0000``, nesting deeper than ``MAX_JSON_DEPTH``):
the text is kept in ``raw_payload`` and ``payload`` holds a storable placeholder.

Configuration: STRIPE_WEBHOOK_SECRET (one or more comma-separated secrets, any of which may
have signed a delivery; required: without it the receiver refuses to start),
MONITOR_RECLAIM_MINUTES (when a re-delivery takes over an event from a worker that hangs; one
whose process died is taken over at once) and DATABASE_URL, as everywhere in the project. ``python -m tracking.receiver`` serves it under
uvicorn with a time limit on request headers as well (see ``serve``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.db import connection_problem, create_jobs_engine
from core.error_policy import ATTEMPT_SOURCES, PayloadError, classify
from core.errors import ConfigError
from core.settings import get_settings
from tracking.registrations import apply_event
from tracking.signing import stripe_signature
from tracking.tracker import (
    RETRY_LATER,
    SKIP_DUPLICATE,
    SQL,
    AttemptSuperseded,
    EventTracker,
    FailureNotRecorded,
    connection_lost,
    error_message,
    event_fields,
)

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook"
# The signature's timestamp: Unix seconds, 1 to 12 ASCII digits (enough until the year 33658).
TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Stripe's own default: a signature older than this is refused, which stops replays.
SIGNATURE_TOLERANCE_S = 300
# Stripe events are far smaller; this only bounds what an unauthenticated caller can make
# the receiver hold in memory before the signature is checked.
MAX_BODY_BYTES = 4 * 1024 * 1024
POOL_SIZE = 10
# A body must arrive within this many seconds of its headers, so slow clients cannot hold
# connections (and memory) open; headers themselves are bounded by ``serve``.
BODY_TIMEOUT_S = 10.0
HEADER_TIMEOUT_S = 10.0
# Stripe events nest about ten levels deep; anything far deeper is refused before parsing
# (Python's parser would recurse, PostgreSQL's jsonb would run out of stack).
MAX_JSON_DEPTH = 64
# Re-deliveries by the monitor (jobs/replay/redeliver.py) say who sent them; recorded on the attempt.
SOURCE_HEADER = "webhook-monitor-source"

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_EVENT_ID = re.compile(r'"id"\s*:\s*"(evt_[A-Za-z0-9_]{1,200})"')
_EVENT_TYPE = re.compile(r'"type"\s*:\s*"([a-z0-9_.]{1,200})"')


class UnprocessablePayload(PayloadError):
    """A signed body that is not a storable JSON Stripe event (kept as text, recorded failed)."""


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit`` (strings ignored)."""
    # Nothing can nest deeper than it has brackets: a Stripe event has a few dozen, and
    # counting them takes 4 µs where the walk below takes 170 µs (a checkout session event).
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def new_error_id() -> str:
    """A short id put in an error reply and in the log line that explains it."""
    return uuid.uuid4().hex[:12]


class Receiver:
    """The ASGI application. Pass ``engine`` and ``webhook_secret`` to use it without the
    environment (tests, embedding); otherwise they come from the settings at startup."""

    def __init__(self, *, engine: Engine | None = None, webhook_secret: str | None = None,
                 stale_after: timedelta | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 pool_size: int = POOL_SIZE, body_timeout_s: float = BODY_TIMEOUT_S):
        self.engine = engine
        self.webhook_secret = webhook_secret  # one or more, comma-separated
        self.body_timeout_s = body_timeout_s
        self.stale_after = stale_after  # None: MONITOR_RECLAIM_MINUTES at start
        self.max_body_bytes = max_body_bytes
        self.pool_size = pool_size
        self.tracker: EventTracker | None = None
        self._owns_engine = False
        # Blocking database work runs in worker threads, never more at once than the pool
        # has connections, so a burst queues here instead of timing out in the pool.
        self._limiter: anyio.CapacityLimiter | None = None
        self._routes = Starlette(routes=[
            Route(WEBHOOK_PATH, self.webhook, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
        ])

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Resolve the secret and the engine; ConfigError when the secret is missing."""
        if self.tracker is not None:
            return
        if self.webhook_secret is None or self.engine is None:
            settings = get_settings()
            self.webhook_secret = self.webhook_secret or settings.STRIPE_WEBHOOK_SECRET
            if not self.secrets():
                raise ConfigError(
                    "STRIPE_WEBHOOK_SECRET is not set: the receiver cannot verify that deliveries "
                    "come from Stripe and does not start. Set it to the endpoint's signing secret "
                    "(whsec_..., Stripe Dashboard > Developers > Webhooks, or `stripe listen`).")
            if self.engine is None:
                # No pre-ping: it would cost every delivery a round trip. A pooled connection
                # the server closed (a restart) fails the claim, which the tracker then makes
                # again on a new connection (EventTracker.begin), and /healthz asks again.
                self.engine = create_jobs_engine(settings, pool_size=self.pool_size, max_overflow=0,
                                                 pool_timeout=30, pool_pre_ping=False)
                self._owns_engine = True
        if self.stale_after is None:
            # The fallback for a hung worker; a dead one is taken over at once (tracking.tracker).
            self.stale_after = timedelta(minutes=get_settings().MONITOR_RECLAIM_MINUTES)
        self.tracker = EventTracker(self.engine, stale_after=self.stale_after)
        problem = self.database_problem()
        if problem:
            # Start anyway: deliveries get 503 (Stripe retries) and /healthz says why.
            log.warning("the database is not ready: %s", problem)

    def close(self) -> None:
        if self._owns_engine and self.engine is not None:
            self.engine.dispose()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.tracker is None:  # served without the lifespan protocol
            await anyio.to_thread.run_sync(self.start)
        await self._routes(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await anyio.to_thread.run_sync(self.start)
                except ConfigError as exc:
                    # The server logs this one line and exits; a traceback would add nothing.
                    await send({"type": "lifespan.startup.failed", "message": f"receiver not started: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created inside the running event loop
            self._limiter = anyio.CapacityLimiter(self.pool_size)
        return self._limiter

    # --- endpoints -----------------------------------------------------------------------

    async def webhook(self, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body_bytes:
            return _too_large(self.max_body_bytes)
        chunks, size = [], 0
        try:
            with anyio.fail_after(self.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return _too_large(self.max_body_bytes)
                    chunks.append(chunk)
        except TimeoutError:
            log.warning("dropped a delivery whose body did not arrive within %.0f s", self.body_timeout_s)
            return JSONResponse({"status": "rejected", "reason": "body_timeout"}, status_code=408,
                                headers={"Connection": "close"})
        except ClientDisconnect:
            return JSONResponse({"status": "rejected", "reason": "disconnected"}, status_code=400)
        body = b"".join(chunks)
        signature = request.headers.get("stripe-signature")
        source = request.headers.get(SOURCE_HEADER, "delivery")
        try:
            status, answer = await anyio.to_thread.run_sync(self.deliver, body, signature, source,
                                                            limiter=self.limiter)
        except Exception:  # a bug: the log has the traceback, the caller an id to quote
            error_id = new_error_id()
            log.exception("delivery failed unexpectedly [error_id=%s]", error_id)
            status, answer = 500, {"status": "error", "error_id": error_id}
        return JSONResponse(answer, status_code=status)

    async def healthz(self, request: Request) -> JSONResponse:
        """Healthy or not; why not goes to the log (under the error id), never to the caller."""
        problem = await anyio.to_thread.run_sync(self.database_problem, limiter=self.limiter)
        if problem:
            error_id = new_error_id()
            log.error("health check failed [error_id=%s]: %s", error_id, problem)
            return JSONResponse({"status": "unavailable", "error_id": error_id}, status_code=503)
        return JSONResponse({"status": "ok"})

    # --- the work (worker threads) -------------------------------------------------------

    def database_problem(self) -> str | None:
        """None when the database answers and has the tracking functions, else why not."""
        for last_try in (False, True):
            try:
                with self.engine.connect() as conn:
                    ready = SQL.execute(conn, "tracking_ready").scalar()
                break
            except sa.exc.DBAPIError as exc:
                # A pooled connection the server had closed says nothing about the database
                # now (the pool is not pre-pinged): ask again, once, on a new one.
                if last_try or not connection_lost(exc):
                    return connection_problem(self.engine.url, exc)
        if not ready:
            return "the tracking functions are missing: run `python -m jobs migrate`"
        return None

    def secrets(self) -> list[str]:
        return [part.strip() for part in (self.webhook_secret or "").split(",") if part.strip()]

    def signature_problem(self, body: bytes, signature: str | None) -> str | None:
        """None when one of the secrets signed ``body`` within the tolerance, else why not.

        Stripe's scheme (https://docs.stripe.com/webhooks#verify-manually), checked here on the
        raw bytes for every configured secret (rotation), refusing timestamps too far in the
        past (replays) and, unlike the stripe library, too far in the future.
        """
        fields = [part.strip().partition("=") for part in (signature or "").split(",")]
        timestamps = [value for key, _, value in fields if key == "t"]
        # As bytes: whatever a client puts in the header (non-ASCII included) is compared,
        # never raised on; an HMAC in hex is ASCII, so nothing else can match.
        candidates = [value.encode("utf-8", "replace") for key, _, value in fields if key == "v1"]
        # Unix seconds in ASCII digits: str.isdigit() also takes "²" or "٣", and a
        # 400-digit number overflows the comparison with the clock.
        if not signature or len(timestamps) != 1 or not TIMESTAMP.fullmatch(timestamps[0]) or not candidates:
            return "the Stripe-Signature header is missing or malformed"
        signed_at = int(timestamps[0])
        if abs(time.time() - signed_at) > SIGNATURE_TOLERANCE_S:
            return f"the signature's timestamp is outside the tolerance ({SIGNATURE_TOLERANCE_S} s either side of now)"
        for secret in self.secrets():
            expected = stripe_signature(body, secret, timestamp=signed_at).partition(",v1=")[2].encode()
            if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
                return None
        return "no signature matches the body for any configured secret"

    def deliver(self, body: bytes, signature: str | None,
                source: str = "delivery") -> tuple[int, dict[str, Any]]:
        """Handle one delivery; returns (HTTP status, JSON answer)."""
        problem = self.signature_problem(body, signature)
        if problem:
            log.warning("rejected a delivery: %s", problem)
            return 400, {"status": "rejected", "reason": "bad_signature", "detail": problem}
        source = source if source in ATTEMPT_SOURCES else "delivery"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self.record_unprocessable(body.decode("utf-8", errors="replace"),
                                             "the body is not UTF-8 text", source)
        try:
            if json_depth_exceeds(text):
                raise UnprocessablePayload(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
            try:
                event = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise UnprocessablePayload(f"not JSON: {str(exc)[:200]}") from None
            event_fields(event)
        except PayloadError as exc:  # InvalidEvent included: no id or type
            return self.record_unprocessable(text, str(exc), source)

        try:
            claim = self.tracker.begin(event, raw_payload=text, source=source, hold=True)
        except sa.exc.DBAPIError as exc:
            verdict = classify(exc)
            if verdict.category == "validation":  # \u0000, too deep or too large for jsonb
                return self.record_unprocessable(
                    text, f"PostgreSQL cannot store the event as jsonb ({verdict.reason})", source, event)
            return self.unavailable(event["id"], exc)
        except sa.exc.SQLAlchemyError as exc:  # pool exhausted
            return self.unavailable(event["id"], exc)
        if claim.decision == SKIP_DUPLICATE:
            return 200, {"status": "duplicate", "event_id": claim.stripe_event_id}
        if claim.decision == RETRY_LATER:
            return 409, {"status": "in_progress", "event_id": claim.stripe_event_id,
                         "detail": "another delivery of this event is being processed"}

        try:
            with self.tracker.attempt(claim, context={"receiver": WEBHOOK_PATH, "source": source}) as attempt:
                outcome = apply_event(attempt.conn, event)
                attempt.outcome = outcome.label
                attempt.registration_id = outcome.registration_id
        except AttemptSuperseded:
            return 409, {"status": "in_progress", "event_id": claim.stripe_event_id,
                         "detail": "another delivery took this event over"}
        except FailureNotRecorded as exc:  # the database went away mid-attempt: Stripe must retry
            return self.unavailable(claim.stripe_event_id, exc.__cause__ or exc)
        except Exception as exc:
            return self.failed(claim.stripe_event_id, claim.event_type, claim.attempt, exc)
        return 200, {"status": "ignored" if outcome.label == "ignored" else "processed",
                     "event_id": claim.stripe_event_id, "attempt": claim.attempt,
                     "outcome": outcome.label}

    def failed(self, event_id: str, event_type: str, attempt: int,
               exc: BaseException) -> tuple[int, dict[str, Any]]:
        """The answer to a failed attempt (already recorded by the tracker), by the policy."""
        verdict = classify(exc)
        error_id = new_error_id()
        log.warning("event %s (%s) failed on attempt %d [error_id=%s, %s, %s]: %s", event_id, event_type,
                    attempt, error_id, verdict.category, verdict.reason, error_message(exc))
        answer = {"status": "failed", "event_id": event_id, "attempt": attempt,
                  "error_category": verdict.category, "recovery_action": verdict.recovery_action,
                  "retry": verdict.transient, "error_id": error_id}
        if isinstance(exc, PayloadError):
            answer["error"] = str(exc)[:500]  # the handler's own words about the payload, no internals
        return (500 if verdict.transient else 200), answer

    def unavailable(self, event_id: str, exc: BaseException) -> tuple[int, dict[str, Any]]:
        error_id = new_error_id()
        log.error("event %s not recorded, database unavailable [error_id=%s]: %s",
                  event_id, error_id, error_message(exc))
        return 503, {"status": "unavailable", "event_id": event_id, "error_id": error_id,
                     "detail": "the database is unavailable; nothing was recorded"}

    def record_unprocessable(self, text: str, reason: str, source: str,
                             event: Any = None) -> tuple[int, dict[str, Any]]:
        """Keep a signed body that cannot be processed or stored as jsonb, recorded failed."""
        digest = hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()
        event_id = event.get("id") if isinstance(event, dict) else None
        event_type = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event_id, str) or not event_id.strip():
            found = _EVENT_ID.search(text[:100_000])
            event_id = found.group(1) if found else f"unparsed_{digest[:32]}"
        if not isinstance(event_type, str) or not event_type.strip():
            found = _EVENT_TYPE.search(text[:100_000])
            event_type = found.group(1) if found else "unknown"
        placeholder = {"id": event_id, "type": event_type,
                       "unprocessable": {"reason": reason[:500], "bytes": len(text), "sha256": digest}}
        error = UnprocessablePayload(reason)
        try:
            claim = self.tracker.begin(placeholder, raw_payload=text.replace("\x00", "\ufffd"),
                                       source=source, keep_raw=True)
            if claim.decision == SKIP_DUPLICATE:
                return 200, {"status": "duplicate", "event_id": event_id}
            if claim.decision == RETRY_LATER:
                return 409, {"status": "in_progress", "event_id": event_id}
            self.tracker.fail(claim, error, context={"receiver": WEBHOOK_PATH, "source": source})
        except sa.exc.SQLAlchemyError as exc:
            return self.unavailable(event_id, exc)
        return self.failed(event_id, event_type, claim.attempt, error)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"status": "rejected", "reason": "too_large",
                         "detail": f"the body exceeds {limit} bytes"}, status_code=413)


app = Receiver()


# --- serving with a time limit on request headers ---------------------------------------------

def header_timeout_protocol(timeout_s: float = HEADER_TIMEOUT_S):
    """uvicorn's h11 protocol that closes a connection whose request headers have not all
    arrived ``timeout_s`` after it opened (or after the previous response): uvicorn itself
    waits for headers forever, so slow clients could hold every connection."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._cancel_header_timer()  # headers complete: the app's body timeout takes over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:
                log.warning("closed a connection whose request headers did not arrive within %.0f s", timeout_s)
                self.transport.close()

    return HeaderTimeoutH11Protocol


def server_config(app_: Any = None, *, host: str = "127.0.0.1", port: int = 8000,
                  header_timeout_s: float = HEADER_TIMEOUT_S, **kwargs: Any):
    """A uvicorn Config for the receiver with the header time limit (``serve`` uses it)."""
    import uvicorn

    return uvicorn.Config(app_ if app_ is not None else app, host=host, port=port,
                          http=header_timeout_protocol(header_timeout_s), lifespan="on", **kwargs)


def serve(argv: list[str] | None = None) -> None:
    """``python -m tracking.receiver [--host H] [--port P | --fd N] [--header-timeout S]``:
    uvicorn with the time limits."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tracking.receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fd", type=int, help="serve on this inherited, listening socket descriptor instead")
    parser.add_argument("--header-timeout", type=float, default=HEADER_TIMEOUT_S, metavar="SECONDS",
                        help=f"close a connection whose request headers take longer (default {HEADER_TIMEOUT_S:.0f})")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.Server(server_config(host=args.host, port=args.port, fd=args.fd, log_level=args.log_level,
                                 header_timeout_s=args.header_timeout)).run()


if __name__ == "__main__":
    serve()
