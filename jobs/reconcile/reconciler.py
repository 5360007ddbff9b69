"""Reconciliation's run: reading both sides, auto-fixing, recording runs and items.

:func:`run` reconciles a window of Checkout Sessions; :func:`check_registrations` a given
set of registrations (cleanup hands it the stale ones Stripe says are paid). Both apply
:mod:`jobs.reconcile.rules` and record through :class:`Reconciler`. The safety rules are in
:mod:`jobs.reconcile.command`'s docstring.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy.engine import Connection, Engine

from core import checkout
from core.sql import load_package
from jobs.reconcile.rules import Mismatch, Registration, assess, index_registrations, match_registration
from jobs.runtime import error_line, recorded_run, while_database_unreachable

JOB = "reconcile"
log = logging.getLogger(__name__)
SQL = load_package("jobs.reconcile", "reconciler.sql")

FIVE_FIELDS = ("stripe_payments_found", "local_registrations_found", "mismatches_detected",
               "auto_fixed_count", "manual_review_needed")
CHUNK_SIZE = 500           # sessions per registrations query and progress update
REGISTRATION_PAGE = 1000   # completed registrations read per keyset page
FIXED_BY = "reconcile"


# --- the report ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RegistrationCheck:
    """What :func:`check_registrations` found and did for one registration."""

    registration_id: str
    session_lookup: str            # "found", "missing" (Stripe has no such session), "no_session_id"
    session: dict[str, Any] | None  # the session as Stripe has it now
    kind: str | None               # the mismatch found, if any
    outcome: str | None            # see Reconciler.handle


@dataclass
class ReconcileReport:
    """A run's outcome: the five report numbers (Stripe payments found, local registrations
    found, mismatches detected, auto-fixed, needing manual review) plus what the run saw and did."""

    run_id: int | None = None
    status: str = "running"
    trigger: str = "cli"
    dry_run: bool = False
    lookback_days: int = 7
    window_start: datetime | None = None
    window_end: datetime | None = None
    stripe_payments_found: int = 0
    local_registrations_found: int = 0
    mismatches_detected: int = 0
    auto_fixed_count: int = 0
    manual_review_needed: int = 0
    already_resolved: int = 0
    fixes_superseded: int = 0
    sessions_checked: int = 0
    pages_read: int = 0
    stripe_requests: int = 0
    open_review_items: int = 0
    by_kind: Counter = field(default_factory=Counter)
    error: str | None = None
    checks: dict[str, RegistrationCheck] = field(default_factory=dict)

    @property
    def needs_person(self) -> bool:
        """Manual review items are open (or, in a dry run, would be)."""
        return self.open_review_items > 0 or self.manual_review_needed > 0

    def five(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIVE_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "status": self.status, "dry_run": self.dry_run,
            **self.five(),
            "mismatches_by_kind": dict(sorted(self.by_kind.items())),
            "open_review_items": self.open_review_items,
        }


# --- the I/O around it ----------------------------------------------------------------------

class Reconciler:
    """Applies classification results: auto-fixes, review items, counters, progress."""

    def __init__(self, engine: Engine, gateway, report: ReconcileReport, *, now: datetime,
                 checkpoint: Callable[[], None] | None = None):
        self.engine = engine
        self.checkpoint = checkpoint
        self.gateway = gateway
        self.report = report
        self.now = now
        self._requests_at_start = gateway.requests_made
        self._pages_at_start = gateway.pages_read

    # outcomes of handle(): what became of one mismatch
    FIXED, WOULD_FIX, SUPERSEDED, QUEUED, STILL_OPEN, ALREADY_RESOLVED, WOULD_QUEUE = (
        "fixed", "would_fix", "superseded", "queued", "still_open", "already_resolved", "would_queue")

    def handle(self, mismatch: Mismatch, session: Mapping[str, Any] | None,
               registration: Registration | None, *,
               session_is_fresh: bool) -> tuple[Mismatch | None, str | None]:
        """Fix or queue one mismatch; returns the mismatch as finally judged and its outcome."""
        if mismatch.auto_fixable:
            if not session_is_fresh:
                # The listing may be minutes old: judge the fix on the session as it is now.
                session = self.gateway.retrieve_checkout_session(mismatch.session_id)
                mismatch = assess(session, registration)
                if mismatch is None:
                    return None, None
            if mismatch.auto_fixable:
                return self._auto_fix(mismatch, session, registration)
        with self.engine.begin() as conn:
            return mismatch, self._record(conn, mismatch)

    def _auto_fix(self, mismatch: Mismatch, session, registration) -> tuple[Mismatch | None, str]:
        if self.checkpoint is not None and not self.report.dry_run:
            self.checkpoint()  # no fix by a run that lost its lock (a database restart): it stops here
        with self.engine.begin() as conn:
            if self.report.dry_run:
                self._insert_item(conn, mismatch)
                self._count(mismatch, auto=True)
                return mismatch, self.WOULD_FIX
            if mismatch.kind == "paid_but_pending":
                changed = checkout.complete_registration(
                    conn, registration_id=mismatch.registration_id, session_id=mismatch.session_id,
                    amount_total=session.get("amount_total"), currency=session.get("currency"),
                    completed_at=self.now)
            else:
                changed = SQL.execute(conn, "expire_pending_registration",
                                      registration_id=mismatch.registration_id,
                                      session_id=mismatch.session_id, now=self.now).first() is not None
            if changed:
                self._insert_item(conn, mismatch, resolved=True)
                self._count(mismatch, auto=True)
                return mismatch, self.FIXED
            # The row changed since we read it (a webhook, a person, cleanup): judge again
            # against the row as it is now, in the same transaction.
            row = SQL.execute(conn, "registration_for_update",
                              registration_id=mismatch.registration_id).mappings().first()
            current = Registration.from_row(row) if row is not None else None
            again = assess(session, current)
            if again is None or again.auto_fixable:
                self.report.fixes_superseded += 1
                return None, self.SUPERSEDED
            return again, self._record(conn, again)

    def _record(self, conn: Connection, mismatch: Mismatch) -> str:
        inserted = self._insert_item(conn, mismatch)
        if inserted is None:
            self.report.already_resolved += 1
            return self.ALREADY_RESOLVED
        self._count(mismatch, auto=False)
        return self.QUEUED if inserted else self.STILL_OPEN

    def _insert_item(self, conn: Connection, mismatch: Mismatch, *, resolved: bool = False) -> bool | None:
        """Record the item; True when a new row was written, False when an open one was
        seen again, None when a person already resolved this mismatch."""
        row = SQL.execute(
            conn, "record_item",
            run_id=self.report.run_id, kind=mismatch.kind,
            session_id=mismatch.session_id, registration_id=mismatch.registration_id,
            action=mismatch.action, severity=mismatch.severity,
            dry_run=self.report.dry_run,
            details=json.dumps(mismatch.details(), default=str), now=self.now,
            resolved_at=self.now if resolved else None,
            resolved_by=FIXED_BY if resolved else None,
            resolution_note=(("marked completed" if mismatch.kind == "paid_but_pending"
                              else "marked expired") + " by reconciliation") if resolved else None,
        ).first()
        return None if row is None else bool(row.inserted)

    def _count(self, mismatch: Mismatch, *, auto: bool) -> None:
        self.report.mismatches_detected += 1
        self.report.by_kind[mismatch.kind] += 1
        if auto:
            self.report.auto_fixed_count += 1
        else:
            self.report.manual_review_needed += 1

    def save_progress(self) -> None:
        """Write the counters so far; then the checkpoint (it raises when the run lost its
        session: the counters are written first, while they still can be)."""
        report = self.report
        report.stripe_requests = self.gateway.requests_made - self._requests_at_start
        report.pages_read = self.gateway.pages_read - self._pages_at_start
        with self.engine.begin() as conn:
            SQL.execute(
                conn, "update_progress",
                run_id=report.run_id, pages_read=report.pages_read,
                sessions_checked=report.sessions_checked,
                stripe_requests=report.stripe_requests,
                stripe_payments_found=report.stripe_payments_found,
                local_registrations_found=report.local_registrations_found,
                mismatches_detected=report.mismatches_detected,
                auto_fixed_count=report.auto_fixed_count,
                manual_review_needed=report.manual_review_needed,
                already_resolved_count=report.already_resolved,
                fixes_superseded_count=report.fixes_superseded,
            )
        if self.checkpoint is not None:
            self.checkpoint()

    # -- the window --

    def reconcile_window(self, on_progress: Callable[[ReconcileReport], None] | None = None) -> None:
        report = self.report
        with self.engine.connect() as conn:
            report.local_registrations_found = SQL.execute(
                conn, "count_window_registrations",
                window_start=report.window_start, window_end=report.window_end).scalar_one()
        self.save_progress()
        matched: set[str] = set()
        created_gte = int(report.window_start.timestamp())
        created_lt = math.floor(report.window_end.timestamp()) + 1
        chunk: list[dict] = []
        for session in self.gateway.iter_checkout_sessions(created_gte, created_lt):
            chunk.append(session)
            if len(chunk) >= CHUNK_SIZE:
                self._sessions_chunk(chunk, matched)
                chunk = []
                if on_progress:
                    on_progress(report)
        if chunk:
            self._sessions_chunk(chunk, matched)
        self._unmatched(matched)

    def _sessions_chunk(self, sessions: list[dict], matched: set[str]) -> None:
        report = self.report
        report.sessions_checked += len(sessions)
        report.stripe_payments_found += sum(
            1 for s in sessions if s.get("payment_status") in checkout.PAID_STATUSES)
        session_ids = [s["id"] for s in sessions]
        refs = sorted({ref for s in sessions if (ref := checkout.registration_id(s.get("client_reference_id")))})
        with self.engine.connect() as conn:
            rows = SQL.execute(conn, "registrations_for_sessions",
                               session_ids=session_ids, registration_ids=refs).mappings().all()
        by_session_id, by_id = index_registrations(Registration.from_row(row) for row in rows)

        queued: list[Mismatch] = []
        for session in sessions:
            registration = match_registration(session, by_session_id, by_id)
            if registration is not None \
                    and registration.stripe_checkout_session_id in (None, session["id"]):
                matched.add(registration.id)
            mismatch = assess(session, registration)
            if mismatch is None:
                continue
            if mismatch.auto_fixable:
                self.handle(mismatch, session, registration, session_is_fresh=False)
            else:
                queued.append(mismatch)
        if queued:
            with self.engine.begin() as conn:  # the chunk's review items in one transaction
                for mismatch in queued:
                    self._record(conn, mismatch)
        self.save_progress()

    def _unmatched(self, matched: set[str]) -> None:
        """Completed registrations of the window that no listed session accounted for."""
        after = "00000000-0000-0000-0000-000000000000"
        while True:
            with self.engine.connect() as conn:
                rows = SQL.execute(
                    conn, "completed_window_registrations",
                    window_start=self.report.window_start, window_end=self.report.window_end,
                    after_id=after, page_size=REGISTRATION_PAGE).mappings().all()
            if not rows:
                return
            after = str(rows[-1]["id"])
            for row in rows:
                registration = Registration.from_row(row)
                if registration.id in matched:
                    continue
                session = None
                if registration.stripe_checkout_session_id:
                    # Outside the listed window, or really gone: ask Stripe directly.
                    session = self.gateway.retrieve_checkout_session(registration.stripe_checkout_session_id)
                mismatch = assess(session, registration)
                if mismatch is not None:
                    self.handle(mismatch, session, registration, session_is_fresh=True)
            self.save_progress()


def _open_review_items(engine: Engine) -> int:
    return SQL.scalar(engine, "count_open_review_items")


def _start_run(engine: Engine, report: ReconcileReport, *, started_at: datetime,
               job_run_id: int | None) -> int:
    with engine.begin() as conn:
        return SQL.execute(
            conn, "start_run",
            trigger=report.trigger, lookback_days=report.lookback_days,
            dry_run=report.dry_run, window_start=report.window_start,
            window_end=report.window_end, started_at=started_at,
            job_run_id=job_run_id).scalar_one()


def _finish_run(engine: Engine, report: ReconcileReport, status: str, *, now: datetime,
                elapsed: float, error: str | None = None) -> None:
    """Record the outcome. The duration is the job's own monotonic measure and the finish
    time is the run's ``now`` plus it, so a run given a ``now`` in the past (a replay, a
    test) records a sensible duration instead of the wall clock's distance from ``now``."""
    report.status = status
    report.error = error
    with engine.begin() as conn:
        SQL.execute(conn, "finish_run", run_id=report.run_id, status=status,
                    finished_at=now + timedelta(seconds=elapsed),
                    duration_ms=int(elapsed * 1000), error=error)


def _run_recorded(engine: Engine, reconciler_body, report: ReconcileReport, gateway, *,
                  now: datetime, job_run_id: int | None,
                  checkpoint: Callable[[], None] | None = None) -> None:
    """Start the run's row, run the body, and record it completed or failed.

    ``checkpoint`` (the job run's ``check_session``) is called with every progress save and
    before the run is recorded completed: it raises when the run lost its session and lock."""
    clock = time.monotonic()
    report.run_id = _start_run(engine, report, started_at=now, job_run_id=job_run_id)
    reconciler = Reconciler(engine, gateway, report, now=now, checkpoint=checkpoint)
    try:
        reconciler_body(reconciler)
        reconciler.save_progress()  # and the checkpoint: no success for a run that lost its lock
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the reason below matters more than the counters
            reconciler.save_progress()
        try:  # retried while the database restarts; the job's own error matters more
            while_database_unreachable(_finish_run)(engine, report, "failed", now=now,
                                                    elapsed=time.monotonic() - clock, error=error_line(exc)[:2000])
        except Exception as record_exc:
            report.status, report.error = "failed", error_line(exc)[:2000]
            log.error("reconciliation run %s failed and could not be recorded as failed: %s",
                      report.run_id, error_line(record_exc))
        raise
    _finish_run(engine, report, "completed", now=now, elapsed=time.monotonic() - clock)
    report.open_review_items = _open_review_items(engine)


def run(engine: Engine, *, now: datetime, gateway, lookback_days: int = 7, dry_run: bool = False,
        trigger: str = "cli",
        on_progress: Callable[[ReconcileReport], None] | None = None) -> ReconcileReport:
    """Reconcile the last ``lookback_days`` of Checkout Sessions; return the report.

    Holds the ``reconcile`` advisory lock (a concurrent run raises ``JobBusy`` and does
    nothing) and records the run in ``job_runs`` and ``reconciliation_runs``. Stripe errors
    raise ``StripeUnavailable`` after the run is recorded as failed.
    """
    if lookback_days < 1:
        raise ValueError("lookback_days must be at least 1")
    report = ReconcileReport(trigger=trigger, dry_run=dry_run, lookback_days=lookback_days,
                             window_start=now - timedelta(days=lookback_days), window_end=now)
    with recorded_run(engine, JOB, now=now, trigger=trigger) as job:
        _run_recorded(engine, lambda r: r.reconcile_window(on_progress), report, gateway,
                      now=now, job_run_id=job.id, checkpoint=job.check_session)
        job.summary = report.as_dict()
        job.status = "needs_review" if report.needs_person else "completed"
    return report


def check_registrations(engine: Engine, gateway, registration_ids: Iterable[str], *, now: datetime,
                        trigger: str = "cleanup", dry_run: bool = False,
                        session_ids: Mapping[str, str] | None = None,
                        record: bool = True) -> ReconcileReport:
    """Reconcile exactly these registrations, retrieving each one's session from Stripe.

    ``session_ids`` names, per registration id, the session to check instead of the one the
    row records: the caller found it by ``client_reference_id`` (a row that never recorded
    its session, or a customer's second checkout).

    The same rules as a window run apply (auto-fix with the conditional update, review items
    without duplicates), recorded as a ``reconciliation_runs`` row with this ``trigger``.
    ``report.checks`` maps each registration id found to a :class:`RegistrationCheck`
    (the session as Stripe has it now, the mismatch kind, what was done). It takes no lock:
    every write it makes is safe alongside a window run.

    ``record=False`` (with ``dry_run``) only judges: no run row, no review item, nothing
    written; ``report.run_id`` stays None and each check's outcome says what a real run
    would do (``would_fix`` or ``would_queue``). Cleanup's dry run uses it, so a preview
    leaves no reconciliation run behind.
    """
    if not record and not dry_run:
        raise ValueError("only a dry run may skip recording")
    wanted = sorted({canonical for rid in registration_ids
                     if (canonical := checkout.registration_id(str(rid)))})
    registrations: list[Registration] = []
    with engine.connect() as conn:
        for start in range(0, len(wanted), REGISTRATION_PAGE):
            rows = SQL.execute(conn, "registrations_by_id",
                               registration_ids=wanted[start:start + REGISTRATION_PAGE]).mappings()
            registrations.extend(Registration.from_row(row) for row in rows)
    oldest = min((r.created_at for r in registrations if r.created_at), default=now)
    oldest = min(oldest, now)
    lookback_days = max(1, math.ceil((now - oldest).total_seconds() / 86400))
    report = ReconcileReport(trigger=trigger, dry_run=dry_run, lookback_days=lookback_days,
                             window_start=oldest, window_end=now,
                             local_registrations_found=len(registrations))

    def body(reconciler: Reconciler) -> None:
        for registration in registrations:
            session, lookup = None, "no_session_id"
            session_id = (session_ids or {}).get(registration.id) or registration.stripe_checkout_session_id
            if session_id:
                session = gateway.retrieve_checkout_session(session_id)
                lookup = "found" if session is not None else "missing"
            if session is not None:
                report.sessions_checked += 1
                if session.get("payment_status") in checkout.PAID_STATUSES:
                    report.stripe_payments_found += 1
            mismatch = assess(session, registration)
            kind = outcome = None
            if mismatch is not None and not record:
                kind = mismatch.kind
                outcome = Reconciler.WOULD_FIX if mismatch.auto_fixable else Reconciler.WOULD_QUEUE
                report.mismatches_detected += 1
                report.by_kind[kind] += 1
                if mismatch.auto_fixable:
                    report.auto_fixed_count += 1
                else:
                    report.manual_review_needed += 1
            elif mismatch is not None:
                final, outcome = reconciler.handle(mismatch, session, registration, session_is_fresh=True)
                kind = final.kind if final is not None else mismatch.kind
            report.checks[registration.id] = RegistrationCheck(registration.id, lookup, session,
                                                               kind, outcome)

    if not record:
        body(Reconciler(engine, gateway, report, now=now))
        return report
    _run_recorded(engine, body, report, gateway, now=now, job_run_id=None)
    return report
