"""The Python side of event tracking: a context manager over the SQL functions of
``migrations/functions/tracking.sql``.

    tracker = EventTracker(create_jobs_engine())
    try:
        with tracker.track(event) as attempt:
            ...do the work with attempt.conn (same transaction as the 'completed' mark)...
            attempt.outcome = "registration_completed"
    except DuplicateDelivery:
        ...already processed: answer 2xx...
    except EventInProgress:
        ...another worker has it: answer non-2xx so Stripe retries later...

Entering the block records the delivery and claims the event (its own, committed
transaction). Leaving it normally marks the event completed in the same transaction as the
work, so both happen or neither does. An exception rolls the work back, records the failure
(message, category, exception type, trimmed traceback, context) and propagates.

``begin`` + ``attempt`` are the same in two steps, for callers that answer each decision
themselves (the reference receiver). docs/tracking.md has the whole story.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from core.error_policy import ATTEMPT_SOURCES, PayloadError, classify
from core.sql import load_package

log = logging.getLogger(__name__)

# Built once: each delivery runs several of these statements.
SQL = load_package("tracking")

PROCESS, SKIP_DUPLICATE, RETRY_LATER = "process", "skip_duplicate", "retry_later"
DEFAULT_STALE_AFTER = timedelta(minutes=5)
TRACEBACK_FRAMES = 8
TRACEBACK_CHARS = 4000
MESSAGE_CHARS = 1000


class InvalidEvent(PayloadError):
    """The object is not a Stripe event: no id or type to record it by."""


class TrackingSignal(Exception):
    """This delivery must not be processed; ``claim`` says why."""

    def __init__(self, claim: "Claim", message: str):
        super().__init__(message)
        self.claim = claim


class DuplicateDelivery(TrackingSignal):
    """The event was already completed: acknowledge the delivery (2xx) and do nothing."""


class EventInProgress(TrackingSignal):
    """Another worker is processing the event right now: answer non-2xx so Stripe retries."""


class AttemptSuperseded(TrackingSignal):
    """The event was reclaimed by another worker while this one ran; this work was rolled back."""


class FailureNotRecorded(TrackingSignal):
    """The attempt failed and its failure could not be recorded either (the database went
    away): the row stays 'processing' until reclaimed. Answer 5xx, whatever the error, so
    the delivery comes again; raised from the attempt's own exception."""


@dataclass(frozen=True)
class Claim:
    """What ``webhook_event_begin`` decided for one delivery."""

    stripe_event_id: str
    event_type: str
    decision: str  # process | skip_duplicate | retry_later
    attempt: int
    previous_status: str | None  # None for a new event


@dataclass
class Attempt:
    """The running attempt inside ``track()``: its transaction and what to record at the end."""

    claim: Claim
    conn: Connection
    outcome: str | None = None
    registration_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


def event_fields(event: Mapping[str, Any]) -> tuple[str, str, datetime | None, bool]:
    """(id, type, created, livemode) of a Stripe event, or InvalidEvent."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"a Stripe event is a JSON object, not {type(event).__name__}")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id.strip():
        raise InvalidEvent("the event has no 'id'")
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidEvent(f"event {event_id} has no 'type'")
    created = event.get("created")
    created_at = None
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        try:
            created_at = datetime.fromtimestamp(created, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            created_at = None  # Stripe's time is informative only; never lose the event over it
    return event_id, event_type, created_at, event.get("livemode") is True


def categorise(exc: BaseException) -> str:
    """The error category of an exception (``core.error_policy.classify``)."""
    return classify(exc).category


def error_details(exc: BaseException, *, claim: Claim | None = None,
                  context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Structured details of a failure: exception type, trimmed traceback, context."""
    kind = type(exc)
    frames = traceback.format_exception(kind, exc, exc.__traceback__, limit=-TRACEBACK_FRAMES)
    text = "".join(frames)
    if len(text) > TRACEBACK_CHARS:  # keep the end: the innermost frames and the message
        text = "…" + text[-TRACEBACK_CHARS:]
    details: dict[str, Any] = {
        "exception_type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc)[:MESSAGE_CHARS],
        "traceback": text,
        "context": dict(context or {}),
        "host": socket.gethostname(),
    }
    if claim is not None:
        details["attempt"] = claim.attempt
        details["event_type"] = claim.event_type
    return details


def error_message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:MESSAGE_CHARS] if text else type(exc).__name__


class EventTracker:
    """Records Stripe events in ``webhook_events`` through the tracking SQL functions."""

    def __init__(self, engine: Engine, *, stale_after: timedelta = DEFAULT_STALE_AFTER):
        self.engine = engine
        self.stale_after = stale_after
        # Connections of 'process' claims, holding the event's lock, until attempt() runs.
        self._claimed: dict[tuple[str, int], Connection] = {}
        self._claimed_lock = threading.Lock()

    def begin(self, event: Mapping[str, Any], *, raw_payload: str | None = None,
              source: str = "delivery", keep_raw: bool = False, hold: bool = False) -> Claim:
        """Record the delivery and claim the event (committed at once); see ``Claim.decision``.

        ``raw_payload`` is the event's JSON text as received, stored as is; without it the
        event is serialised. ``source`` says who delivered (delivery, retry, sweep). With
        ``keep_raw`` the text goes to ``raw_payload`` and ``event`` (a storable placeholder)
        to ``payload``: for bodies PostgreSQL cannot hold as jsonb.

        ``hold``: claim on the connection the attempt will work on, which takes the event's
        liveness lock before the claim commits, so there is no moment at which this process
        could die leaving a claim the next delivery cannot take over at once. A 'process'
        claim made so must then go to ``attempt`` (or ``fail``), which give that connection
        back; ``track`` and the receiver do this. Without ``hold`` the lock is taken when the
        attempt starts.
        """
        event_id, event_type, created_at, livemode = event_fields(event)
        if source not in ATTEMPT_SOURCES:
            raise ValueError(f"source must be one of {ATTEMPT_SOURCES}, not {source!r}")
        if keep_raw:
            payload, raw = json.dumps(event, default=str), raw_payload
        else:
            payload, raw = (raw_payload if raw_payload is not None else json.dumps(event, default=str)), None
        # With hold, the connection that claims the event takes its liveness lock first and,
        # when the claim is 'process', stays checked out for the attempt's work: from the
        # commit of the claim on, the event is held by a session that ends if this process dies.
        # One round trip either way: with hold, lock and claim are one statement
        # (tracker.sql, claim_event), run outside a transaction so it commits by itself, which
        # also gives the lock back when the decision is not 'process'.
        params = dict(stripe_event_id=event_id, event_type=event_type, payload=payload,
                      stripe_created_at=created_at, livemode=livemode, stale_after=self.stale_after,
                      source=source, raw_payload=raw)
        # An engine may hand out pooled connections unchecked (the receiver's has no pre-ping:
        # one round trip less per delivery), so after a database restart the claim can meet a
        # connection the server closed. It is claimed again, once, on a new one: a claim that
        # never reached the server wrote nothing, and one that ran before its session died
        # lost its lock with it, so the second claim takes the event over as any re-delivery
        # would. Only the claim: past it, a lost connection fails the attempt as before.
        for last_try in (False, True):
            conn = self.engine.connect()
            locked = sent = False
            try:
                if hold:
                    row = autocommit(conn, "claim_event", params)[0]
                    locked = bool(row.locked)
                else:
                    with conn.begin():
                        row = SQL.execute(conn, "begin_event", **params).one()
                        sent = True  # what fails from here is the COMMIT: it may have committed
            except BaseException as exc:
                # The lock is a session's, not a transaction's: a claim that failed after taking
                # it still holds it.
                self._let_go(conn, event_id, hold)
                if last_try or sent or not connection_lost(exc):
                    raise
                log.info("event %s: the pooled connection was closed by the server (%s); claiming "
                         "again on a new connection", event_id, error_message(exc))
                continue
            break
        claim = Claim(event_id, event_type, row.decision, row.attempt, row.previous_status)
        if claim.decision == PROCESS and locked:
            with self._claimed_lock:
                self._claimed[(event_id, claim.attempt)] = conn
        else:
            conn.close()  # claim_event gave the lock back unless the claim is 'process'
        return claim

    def _take_claimed(self, claim: Claim) -> Connection | None:
        with self._claimed_lock:
            return self._claimed.pop((claim.stripe_event_id, claim.attempt), None)

    def _let_go(self, conn: Connection, event_id: str, locked: bool) -> None:
        if locked:
            self.release(conn, event_id)
        conn.close()

    def complete(self, conn: Connection, claim: Claim, *, outcome: str | None = None,
                 registration_id: str | None = None, release: bool = False) -> bool:
        """Mark the attempt completed inside the caller's transaction; False if superseded.
        ``release``: give the event's liveness lock back in the same statement (``attempt``)."""
        params = dict(stripe_event_id=claim.stripe_event_id, outcome=outcome,
                      registration_id=registration_id, attempt=claim.attempt)
        if release:
            return bool(SQL.execute(conn, "complete_release_event", **params).one().completed)
        return bool(SQL.execute(conn, "complete_event", **params).scalar())

    def fail(self, claim: Claim, error: BaseException | str, *, category: str | None = None,
             retryable: bool | None = None, context: Mapping[str, Any] | None = None,
             conn: Connection | None = None, release: bool = False) -> bool:
        """Record the attempt as failed (own transaction, on ``conn`` if given, which must not
        be in a transaction); False if superseded. ``release``: ``conn`` holds the event's
        liveness lock, given back in the same statement, which commits by itself.

        The category and whether a retry can help come from ``classify(error)`` unless given;
        ``webhook_event_fail`` plans the next retry from them.
        """
        if isinstance(error, BaseException):
            message = error_message(error)
            details = error_details(error, claim=claim, context=context)
            verdict = classify(error)
            details["classified_as"] = verdict.reason
            category = category or verdict.category
            retryable = verdict.retryable if retryable is None else retryable
        else:
            message = str(error)[:MESSAGE_CHARS]
            details = {"context": dict(context or {}), "attempt": claim.attempt,
                       "event_type": claim.event_type}
        params = {
            "stripe_event_id": claim.stripe_event_id, "error_message": message,
            "error_details": json.dumps(details, default=str),
            "error_category": category or "unknown", "attempt": claim.attempt,
            "retryable": retryable,
        }
        if conn is None:
            claimed = self._take_claimed(claim)
            if claimed is not None:  # begin, then fail without an attempt (an unprocessable body)
                return self._fail_and_release(claimed, claim.stripe_event_id, params, close=True)
            with self.engine.begin() as own:
                return bool(SQL.execute(own, "fail_event", **params).scalar())
        if conn.in_transaction():
            conn.rollback()
        if release:
            return self._fail_and_release(conn, claim.stripe_event_id, params)
        with conn.begin():
            return bool(SQL.execute(conn, "fail_event", **params).scalar())

    def _fail_and_release(self, conn: Connection, event_id: str, params: dict, *, close: bool = False) -> bool:
        """fail_event and the lock's release in one statement that commits by itself; if it
        cannot run, the lock is let go on its own (or the session ended)."""
        try:
            return bool(autocommit(conn, "fail_release_event", params)[0].failed)
        except BaseException:
            self.release(conn, event_id)
            raise
        finally:
            if close:
                conn.close()

    @contextmanager
    def track(self, event: Mapping[str, Any], *, raw_payload: str | None = None,
              context: Mapping[str, Any] | None = None, source: str = "delivery") -> Iterator[Attempt]:
        """Claim the event, run the block in a transaction, then record the outcome.

        Raises DuplicateDelivery or EventInProgress on entry when this delivery must not be
        processed, AttemptSuperseded when another worker reclaimed the event meanwhile (the
        block's work is rolled back), and re-raises the block's own exception once the
        failure is recorded.
        """
        claim = self.begin(event, raw_payload=raw_payload, source=source, hold=True)
        if claim.decision == SKIP_DUPLICATE:
            raise DuplicateDelivery(claim, f"event {claim.stripe_event_id} was already processed")
        if claim.decision == RETRY_LATER:
            raise EventInProgress(claim, f"event {claim.stripe_event_id} is being processed by "
                                         "another worker; deliver it again later")
        with self.attempt(claim, context=context) as attempt:
            yield attempt

    @contextmanager
    def attempt(self, claim: Claim, *, context: Mapping[str, Any] | None = None) -> Iterator[Attempt]:
        """Run the block for a claim whose decision is 'process' (see ``track``).

        The work runs on the connection that claimed the event in ``begin`` and holds its
        liveness lock (migrations/functions/tracking.sql; a claim made elsewhere takes it here with
        ``webhook_event_hold``): if this process dies, PostgreSQL frees the lock and the next
        delivery takes the event over at once instead of after ``stale_after``. A 'process'
        claim from ``begin`` must be followed by ``attempt``, which returns its connection.
        The lock is released once the outcome is recorded; the failure of an attempt is
        recorded on the same connection, so an attempt never needs two pooled connections.
        """
        if claim.decision != PROCESS:
            raise ValueError(f"event {claim.stripe_event_id} was not claimed for processing ({claim.decision})")
        attempt_context = dict(context or {})
        conn = self._take_claimed(claim)
        held = conn is not None
        try:
            if conn is None:  # claimed elsewhere, or the lock was busy: prove it now if we can
                conn = self.engine.connect()
                held = self.hold(conn, claim)
            with conn.begin():
                attempt = Attempt(claim, conn, context=attempt_context)
                yield attempt
                # The completion gives the lock back too (one statement); from here on the
                # lock is released whatever happens, the session lock being outside the
                # transaction.
                completed = self.complete(conn, claim, outcome=attempt.outcome,
                                          registration_id=attempt.registration_id, release=held)
                held = False
                if not completed:
                    raise AttemptSuperseded(
                        claim, f"event {claim.stripe_event_id} was reclaimed by another worker "
                               f"during attempt {claim.attempt}; this attempt's work was rolled back")
        except AttemptSuperseded:
            raise
        except Exception as exc:
            # The block's transaction is rolled back by now; the failure gets its own, which
            # gives the lock back as well.
            try:
                releasing, held = held, False
                self.fail(claim, exc, context=attempt_context, conn=conn, release=releasing)
            except Exception as record_exc:
                # The row stays 'processing'; once this session's lock is gone (below) the
                # next delivery takes it over. Say why it is not failed.
                log.error("could not record the failure of event %s (%s); it stays 'processing' "
                          "until the next delivery takes it over: %s", claim.stripe_event_id,
                          error_message(exc), error_message(record_exc))
                raise FailureNotRecorded(claim, f"event {claim.stripe_event_id} failed and the failure "
                                                "could not be recorded") from exc
            raise
        finally:
            if conn is not None:
                if held:
                    self.release(conn, claim.stripe_event_id)
                conn.close()

    def hold(self, conn: Connection, claim: Claim) -> bool:
        """Take the event's liveness lock on ``conn`` (committed); False when not held."""
        with conn.begin():
            return bool(SQL.execute(conn, "hold_event", stripe_event_id=claim.stripe_event_id,
                                    attempt=claim.attempt).scalar())

    def release(self, conn: Connection, event_id: str) -> None:
        """Release the event's liveness lock held by ``conn``. If that fails the session is
        ended instead (which frees the lock), so a pooled connection never keeps it."""
        if conn.invalidated:  # its session is closed, and the lock went with it
            return
        try:
            if conn.in_transaction():
                conn.rollback()
            autocommit(conn, "release_event", {"stripe_event_id": event_id})
        except Exception as exc:
            log.warning("could not release the lock of event %s (%s); closing its connection",
                        event_id, error_message(exc))
            conn.invalidate()


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection was found closed (the server restarted, or ended
    the session): SQLAlchemy has invalidated it, and a new one may succeed."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def autocommit(conn: Connection, name: str, params: Mapping[str, Any]) -> list[Any]:
    """Run one statement of tracker.sql outside a transaction, so it commits by itself, and
    return its rows: one round trip, where BEGIN, the statement and COMMIT are three. The connection is back to
    its default isolation afterwards (the pool would also reset it on return)."""
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        result = SQL.execute(conn, name, **params)
        rows = result.all()
        conn.commit()  # ends SQLAlchemy's own bookkeeping; nothing is sent in autocommit
    finally:
        if not conn.invalidated and not conn.closed:
            if conn.in_transaction():
                conn.rollback()
            conn.execution_options(isolation_level=conn.default_isolation_level)
    return rows
