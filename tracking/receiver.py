"""The reference Stripe webhook receiver: ``uvicorn tracking.receiver:app``.

``POST /stripe/webhook`` checks the ``Stripe-Signature`` header on the raw body, records the
event through the tracking functions, applies the four Checkout Session events to the
registrations (the registration change and the 'completed' mark commit together), and
answers only once the outcome is in the database. ``GET /healthz`` checks the database.

Answers (docs/tracking.md has the full table): 200 processed, ignored or duplicate; 400 bad
signature or malformed body (nothing written); 409 another delivery of the event is being
processed (Stripe retries later); 413 body too large; 500 processing failed (recorded as
'failed', Stripe retries); 503 the database is unavailable.

Configuration: STRIPE_WEBHOOK_SECRET (required: without it the receiver refuses to start)
and DATABASE_URL, as everywhere in the project.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import anyio
import sqlalchemy as sa
import stripe
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.db import connection_problem, create_jobs_engine
from core.errors import ConfigError
from core.settings import get_settings
from tracking.registrations import apply_event
from tracking.tracker import (
    DEFAULT_STALE_AFTER, RETRY_LATER, SKIP_DUPLICATE, SQL, AttemptSuperseded, EventTracker,
    InvalidEvent, categorise, error_message, event_fields,
)

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook"
# Stripe's own default: a signature older than this is refused, which stops replays.
SIGNATURE_TOLERANCE_S = 300
# Stripe events are far smaller; this only bounds what an unauthenticated caller can make
# the receiver hold in memory before the signature is checked.
MAX_BODY_BYTES = 4 * 1024 * 1024
POOL_SIZE = 10


class Receiver:
    """The ASGI application. Pass ``engine`` and ``webhook_secret`` to use it without the
    environment (tests, embedding); otherwise they come from the settings at startup."""

    def __init__(self, *, engine: Engine | None = None, webhook_secret: str | None = None,
                 stale_after: timedelta = DEFAULT_STALE_AFTER, max_body_bytes: int = MAX_BODY_BYTES,
                 pool_size: int = POOL_SIZE):
        self.engine = engine
        self.webhook_secret = webhook_secret
        self.stale_after = stale_after
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
            if not self.webhook_secret:
                raise ConfigError(
                    "STRIPE_WEBHOOK_SECRET is not set: the receiver cannot verify that deliveries "
                    "come from Stripe and does not start. Set it to the endpoint's signing secret "
                    "(whsec_..., Stripe Dashboard > Developers > Webhooks, or `stripe listen`).")
            if self.engine is None:
                self.engine = create_jobs_engine(settings, pool_size=self.pool_size, max_overflow=0,
                                                 pool_timeout=30)
                self._owns_engine = True
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
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return _too_large(self.max_body_bytes)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    return _too_large(self.max_body_bytes)
                chunks.append(chunk)
        except ClientDisconnect:
            return JSONResponse({"status": "rejected", "reason": "disconnected"}, status_code=400)
        body = b"".join(chunks)
        signature = request.headers.get("stripe-signature")
        status, answer = await anyio.to_thread.run_sync(self.deliver, body, signature, limiter=self.limiter)
        return JSONResponse(answer, status_code=status)

    async def healthz(self, request: Request) -> JSONResponse:
        problem = await anyio.to_thread.run_sync(self.database_problem, limiter=self.limiter)
        if problem:
            return JSONResponse({"status": "unavailable", "database": problem}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    # --- the work (worker threads) -------------------------------------------------------

    def database_problem(self) -> str | None:
        """None when the database answers and has the tracking functions, else why not."""
        try:
            with self.engine.connect() as conn:
                ready = conn.execute(SQL["tracking_ready"]).scalar()
        except sa.exc.DBAPIError as exc:
            return connection_problem(self.engine.url, exc)
        if not ready:
            return "the tracking functions are missing: run `python -m jobs migrate`"
        return None

    def deliver(self, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        """Handle one delivery; returns (HTTP status, JSON answer)."""
        try:
            # verify_header is what stripe.Webhook.construct_event checks; the body is then
            # parsed once, as plain JSON, and stored exactly as received.
            stripe.WebhookSignature.verify_header(body, signature, self.webhook_secret,
                                                  SIGNATURE_TOLERANCE_S)
        except stripe.SignatureVerificationError as exc:
            log.warning("rejected a delivery: %s", exc)
            return 400, {"status": "rejected", "reason": "bad_signature", "detail": str(exc)}
        except UnicodeDecodeError:
            return 400, {"status": "rejected", "reason": "malformed", "detail": "the body is not UTF-8 text"}
        text = body.decode("utf-8")
        try:
            event = json.loads(text)
            event_fields(event)
        except (ValueError, InvalidEvent) as exc:
            detail = f"not a JSON Stripe event: {exc}"
            log.warning("rejected a signed delivery: %s", detail)
            return 400, {"status": "rejected", "reason": "malformed", "detail": detail}

        try:
            claim = self.tracker.begin(event, raw_payload=text)
        except sa.exc.DataError as exc:
            detail = f"the event cannot be stored: {error_message(exc.orig or exc)}"
            log.warning("rejected event %s: %s", event["id"], detail)
            return 400, {"status": "rejected", "reason": "unstorable", "detail": detail}
        except sa.exc.SQLAlchemyError as exc:  # unreachable, not migrated, pool exhausted
            log.error("event %s not recorded, database unavailable: %s", event["id"], error_message(exc))
            return 503, {"status": "unavailable", "event_id": event["id"],
                         "detail": "the database is unavailable; nothing was recorded"}
        if claim.decision == SKIP_DUPLICATE:
            return 200, {"status": "duplicate", "event_id": claim.stripe_event_id}
        if claim.decision == RETRY_LATER:
            return 409, {"status": "in_progress", "event_id": claim.stripe_event_id,
                         "detail": "another delivery of this event is being processed"}

        try:
            with self.tracker.attempt(claim, context={"receiver": WEBHOOK_PATH}) as attempt:
                outcome = apply_event(attempt.conn, event)
                attempt.outcome = outcome.label
                attempt.registration_id = outcome.registration_id
        except AttemptSuperseded as exc:
            return 409, {"status": "in_progress", "event_id": claim.stripe_event_id, "detail": str(exc)}
        except Exception as exc:
            category = categorise(exc)
            log.warning("event %s (%s) failed on attempt %d [%s]: %s", claim.stripe_event_id,
                        claim.event_type, claim.attempt, category, error_message(exc))
            return 500, {"status": "failed", "event_id": claim.stripe_event_id, "attempt": claim.attempt,
                         "error_category": category, "error": error_message(exc)}
        return 200, {"status": "ignored" if outcome.label == "ignored" else "processed",
                     "event_id": claim.stripe_event_id, "attempt": claim.attempt,
                     "outcome": outcome.label}


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"status": "rejected", "reason": "too_large",
                         "detail": f"the body exceeds {limit} bytes"}, status_code=413)


app = Receiver()
