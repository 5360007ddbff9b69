"""Reconciliation: Stripe's Checkout Sessions against the local registrations.

Webhooks get lost (an endpoint down, a handler that answered 200 before saving, an event
past Stripe's retry window). This job lists the Checkout Sessions created in the last
``lookback_days``, matches each to its registration (by ``stripe_checkout_session_id``,
else by ``client_reference_id``), classifies every disagreement into one of the kinds of
``KIND_RULES``, fixes the two obvious ones itself and queues the rest for a person
(``python -m jobs review``). Each run is one row of ``reconciliation_runs`` with the seed's
five numbers; each mismatch one row of ``reconciliation_items``.

Safety:

- Matching and classification are pure (:func:`assess`, :func:`find_mismatches`); the rest
  is I/O around them.
- An auto-fix re-reads the session from Stripe, then in ONE transaction updates the row only
  if it is still pending (a webhook that landed meanwhile wins) and records its item, so a
  crash leaves either both or neither, and a re-run finishes the rest.
- A second run fixes nothing twice (a fixed row no longer mismatches) and opens no second
  item for a mismatch already open (a partial unique index; the open item's ``last_seen_*``
  is updated instead). A mismatch a person resolved is not reopened.
- ``dry_run`` records the run and its items as would-do (``dry_run = true``) and changes no
  registration.
- Sessions stream page by page and are processed in chunks, with registrations loaded per
  chunk in one query, so memory stays flat for 100k sessions.
- A run that could not read everything is recorded as failed, never as a success.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy.engine import Connection, Engine

from jobs import sql_files
from jobs.runtime import error_line, recorded_run

HELP = ("compare Stripe's Checkout Sessions with local registrations: fix the obvious "
        "mismatches, queue the rest for a person")

JOB_NAME = "reconcile"
SQL = sql_files.load("reconcile.sql")

# kind -> (action, severity). The kinds and their actions are fixed by the design.
KIND_RULES: dict[str, tuple[str, str]] = {
    "paid_but_pending": ("auto_fixed", "info"),
    "expired_but_pending": ("auto_fixed", "info"),
    "paid_but_failed": ("manual_review", "warning"),
    "paid_no_registration": ("manual_review", "warning"),
    "completed_not_paid": ("manual_review", "critical"),
    "completed_missing_in_stripe": ("manual_review", "warning"),
    "amount_mismatch": ("manual_review", "warning"),
}
AUTO_FIX_KINDS = frozenset(k for k, (action, _) in KIND_RULES.items() if action == "auto_fixed")
PAID_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})
FIVE_FIELDS = ("stripe_payments_found", "local_registrations_found", "mismatches_detected",
               "auto_fixed_count", "manual_review_needed")
TRIGGERS = ("cli", "dashboard", "schedule", "test")

CHUNK_SIZE = 500           # sessions per registrations query and progress update
REGISTRATION_PAGE = 1000   # completed registrations read per keyset page
FIXED_BY = "reconcile"


# --- the pure part: facts, matching, classification -------------------------------------

@dataclass(frozen=True)
class Registration:
    """The local side, as read from ``registrations``."""

    id: str
    stripe_checkout_session_id: str | None
    processing_status: str
    amount_total: int | None = None
    currency: str | None = None
    email: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Registration":
        return cls(id=str(row["id"]), stripe_checkout_session_id=row["stripe_checkout_session_id"],
                   processing_status=row["processing_status"], amount_total=row["amount_total"],
                   currency=row["currency"], email=row["email"], created_at=row["created_at"],
                   completed_at=row["completed_at"])

    def facts(self) -> dict[str, Any]:
        return {
            "registration_id": self.id,
            "stripe_checkout_session_id": self.stripe_checkout_session_id,
            "processing_status": self.processing_status,
            "amount_total": self.amount_total,
            "currency": self.currency,
            "email": self.email,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


def session_facts(session: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Checkout Session a person needs to judge a mismatch."""
    details = session.get("customer_details") or {}
    return {
        "id": session.get("id"),
        "status": session.get("status"),
        "payment_status": session.get("payment_status"),
        "amount_total": session.get("amount_total"),
        "currency": session.get("currency"),
        "client_reference_id": session.get("client_reference_id"),
        "email": details.get("email") or session.get("customer_email"),
        "created": session.get("created"),
        "payment_intent": session.get("payment_intent"),
        "livemode": session.get("livemode"),
    }


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between Stripe and the local table, with both sides' facts."""

    kind: str
    session_id: str | None
    registration_id: str | None
    reason: str
    stripe: dict[str, Any] | None = None
    local: dict[str, Any] | None = None

    @property
    def action(self) -> str:
        return KIND_RULES[self.kind][0]

    @property
    def severity(self) -> str:
        return KIND_RULES[self.kind][1]

    @property
    def auto_fixable(self) -> bool:
        return self.kind in AUTO_FIX_KINDS

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason, "stripe": self.stripe, "local": self.local}


def is_paid(session: Mapping[str, Any]) -> bool:
    return session.get("status") == "complete" and session.get("payment_status") in PAID_PAYMENT_STATUSES


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "no amount"
    return f"{amount / 100:.2f} {(currency or '???').upper()}"


def assess(session: Mapping[str, Any] | None, registration: Registration | None) -> Mismatch | None:
    """The mismatch between one session and the registration matched to it, if any.

    ``session`` None means Stripe has no such session; ``registration`` None means no local
    row matched. A registration that records a different session id is not this session's
    (a superseded checkout attempt): the session then counts as having no registration.
    """
    if session is None:
        if registration is not None and registration.processing_status == "completed":
            sid = registration.stripe_checkout_session_id
            reason = (f"registration is completed but Stripe has no Checkout Session {sid}" if sid
                      else "registration is completed but records no Checkout Session")
            return Mismatch("completed_missing_in_stripe", sid, registration.id, reason,
                            None, registration.facts())
        return None

    sid = session.get("id")
    stripe = session_facts(session)
    paid = is_paid(session)
    if registration is not None and registration.stripe_checkout_session_id not in (None, sid):
        if not paid:
            return None  # an abandoned earlier attempt; the registration tracks a later one
        return Mismatch(
            "paid_no_registration", sid, None,
            f"session is paid; its client_reference_id {registration.id} is a registration "
            f"that records another session ({registration.stripe_checkout_session_id})",
            stripe, registration.facts())
    if registration is None:
        if paid:
            ref = session.get("client_reference_id")
            return Mismatch("paid_no_registration", sid, None,
                            f"session is paid ({_money(session.get('amount_total'), session.get('currency'))}) "
                            f"but no registration matches it"
                            + (f" (client_reference_id {ref})" if ref else ""), stripe, None)
        return None

    local = registration.facts()
    status = registration.processing_status
    if paid:
        amount_differs = (registration.amount_total is not None
                          and registration.amount_total != session.get("amount_total"))
        currency_differs = (registration.currency is not None and session.get("currency") is not None
                            and registration.currency.lower() != str(session["currency"]).lower())
        if amount_differs or currency_differs:
            return Mismatch("amount_mismatch", sid, registration.id,
                            f"Stripe was paid {_money(session.get('amount_total'), session.get('currency'))}, "
                            f"registration expects {_money(registration.amount_total, registration.currency)}",
                            stripe, local)
        if status == "pending":
            return Mismatch("paid_but_pending", sid, registration.id,
                            "session is paid but the registration is still pending", stripe, local)
        if status in ("failed", "expired"):
            return Mismatch("paid_but_failed", sid, registration.id,
                            f"session is paid but the registration is {status}", stripe, local)
        return None

    if session.get("status") == "complete":
        # complete but unpaid: a delayed payment method still settling; not a mismatch yet.
        return None
    if status == "completed":
        return Mismatch("completed_not_paid", sid, registration.id,
                        f"registration is completed but the session is {session.get('status')} "
                        f"and {session.get('payment_status')}", stripe, local)
    if session.get("status") == "expired" and status == "pending" \
            and registration.stripe_checkout_session_id == sid:
        # Only a registration that records this very session is expired: one matched by
        # client_reference_id alone may still have another attempt open or paid.
        return Mismatch("expired_but_pending", sid, registration.id,
                        "session expired unpaid but the registration is still pending", stripe, local)
    return None


def valid_uuid(value: Any) -> str | None:
    """``value`` as a canonical UUID string, or None (client_reference_id is free text)."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def match_registration(session: Mapping[str, Any], by_session_id: Mapping[str, Registration],
                       by_id: Mapping[str, Registration]) -> Registration | None:
    """The registration a session belongs to: by session id, else by client_reference_id."""
    found = by_session_id.get(session.get("id"))
    if found is not None:
        return found
    ref = valid_uuid(session.get("client_reference_id"))
    return by_id.get(ref) if ref else None


def index_registrations(registrations: Iterable[Registration]
                        ) -> tuple[dict[str, Registration], dict[str, Registration]]:
    """The registrations by session id and by id, as :func:`match_registration` takes them."""
    registrations = list(registrations)
    return ({r.stripe_checkout_session_id: r for r in registrations if r.stripe_checkout_session_id},
            {r.id: r for r in registrations})


def find_mismatches(sessions: Iterable[Mapping[str, Any]],
                    registrations: Iterable[Registration]) -> list[Mismatch]:
    """Every mismatch between these sessions and the registrations they may point at."""
    by_session_id, by_id = index_registrations(registrations)
    found = []
    for session in sessions:
        mismatch = assess(session, match_registration(session, by_session_id, by_id))
        if mismatch is not None:
            found.append(mismatch)
    return found


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
    """A run's outcome: the seed's five numbers plus what the run saw and did."""

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

    def __init__(self, engine: Engine, gateway, report: ReconcileReport, *, now: datetime):
        self.engine = engine
        self.gateway = gateway
        self.report = report
        self.now = now
        self._requests_at_start = gateway.requests_made
        self._pages_at_start = gateway.pages_read

    # outcomes of handle(): what became of one mismatch
    FIXED, WOULD_FIX, SUPERSEDED, QUEUED, STILL_OPEN, ALREADY_RESOLVED = (
        "fixed", "would_fix", "superseded", "queued", "still_open", "already_resolved")

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
        with self.engine.begin() as conn:
            if self.report.dry_run:
                self._insert_item(conn, mismatch)
                self._count(mismatch, auto=True)
                return mismatch, self.WOULD_FIX
            statement = SQL["complete_pending_registration" if mismatch.kind == "paid_but_pending"
                            else "expire_pending_registration"]
            changed = conn.execute(statement, {"registration_id": mismatch.registration_id,
                                               "session_id": mismatch.session_id,
                                               "now": self.now}).first()
            if changed is not None:
                self._insert_item(conn, mismatch, resolved=True)
                self._count(mismatch, auto=True)
                return mismatch, self.FIXED
            # The row changed since we read it (a webhook, a person, cleanup): judge again
            # against the row as it is now, in the same transaction.
            row = conn.execute(SQL["registration_for_update"],
                               {"registration_id": mismatch.registration_id}).mappings().first()
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
        row = conn.execute(SQL["record_item"], {
            "run_id": self.report.run_id, "kind": mismatch.kind,
            "session_id": mismatch.session_id, "registration_id": mismatch.registration_id,
            "action": mismatch.action, "severity": mismatch.severity,
            "dry_run": self.report.dry_run,
            "details": json.dumps(mismatch.details(), default=str), "now": self.now,
            "resolved_at": self.now if resolved else None,
            "resolved_by": FIXED_BY if resolved else None,
            "resolution_note": (("marked completed" if mismatch.kind == "paid_but_pending"
                                 else "marked expired") + " by reconciliation") if resolved else None,
        }).first()
        return None if row is None else bool(row.inserted)

    def _count(self, mismatch: Mismatch, *, auto: bool) -> None:
        self.report.mismatches_detected += 1
        self.report.by_kind[mismatch.kind] += 1
        if auto:
            self.report.auto_fixed_count += 1
        else:
            self.report.manual_review_needed += 1

    def save_progress(self) -> None:
        report = self.report
        report.stripe_requests = self.gateway.requests_made - self._requests_at_start
        report.pages_read = self.gateway.pages_read - self._pages_at_start
        with self.engine.begin() as conn:
            conn.execute(SQL["update_progress"], {
                "run_id": report.run_id, "pages_read": report.pages_read,
                "sessions_checked": report.sessions_checked,
                "stripe_requests": report.stripe_requests,
                "stripe_payments_found": report.stripe_payments_found,
                "local_registrations_found": report.local_registrations_found,
                "mismatches_detected": report.mismatches_detected,
                "auto_fixed_count": report.auto_fixed_count,
                "manual_review_needed": report.manual_review_needed,
                "already_resolved_count": report.already_resolved,
                "fixes_superseded_count": report.fixes_superseded,
            })

    # -- the window --

    def reconcile_window(self, on_progress: Callable[[ReconcileReport], None] | None = None) -> None:
        report = self.report
        with self.engine.connect() as conn:
            report.local_registrations_found = conn.execute(
                SQL["count_window_registrations"],
                {"window_start": report.window_start, "window_end": report.window_end}).scalar_one()
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
            1 for s in sessions if s.get("payment_status") in PAID_PAYMENT_STATUSES)
        session_ids = [s["id"] for s in sessions]
        refs = sorted({ref for s in sessions if (ref := valid_uuid(s.get("client_reference_id")))})
        with self.engine.connect() as conn:
            rows = conn.execute(SQL["registrations_for_sessions"],
                                {"session_ids": session_ids, "registration_ids": refs}).mappings().all()
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
                rows = conn.execute(SQL["completed_window_registrations"], {
                    "window_start": self.report.window_start, "window_end": self.report.window_end,
                    "after_id": after, "page_size": REGISTRATION_PAGE}).mappings().all()
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
    with engine.connect() as conn:
        return conn.execute(SQL["count_open_review_items"]).scalar_one()


def _start_run(engine: Engine, report: ReconcileReport, *, started_at: datetime,
               job_run_id: int | None) -> int:
    with engine.begin() as conn:
        return conn.execute(SQL["start_run"], {
            "trigger": report.trigger, "lookback_days": report.lookback_days,
            "dry_run": report.dry_run, "window_start": report.window_start,
            "window_end": report.window_end, "started_at": started_at,
            "job_run_id": job_run_id}).scalar_one()


def _finish_run(engine: Engine, report: ReconcileReport, status: str, error: str | None = None) -> None:
    report.status = status
    report.error = error
    with engine.begin() as conn:
        conn.execute(SQL["finish_run"], {"run_id": report.run_id, "status": status,
                                          "finished_at": datetime.now(timezone.utc), "error": error})


def _run_recorded(engine: Engine, reconciler_body, report: ReconcileReport, gateway, *,
                  now: datetime, job_run_id: int | None) -> None:
    """Start the run's row, run the body, and record it completed or failed."""
    report.run_id = _start_run(engine, report, started_at=now, job_run_id=job_run_id)
    reconciler = Reconciler(engine, gateway, report, now=now)
    try:
        reconciler_body(reconciler)
        reconciler.save_progress()
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the reason below matters more than the counters
            reconciler.save_progress()
        _finish_run(engine, report, "failed", error_line(exc)[:2000])
        raise
    _finish_run(engine, report, "completed")
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
    with recorded_run(engine, JOB_NAME, now=now, trigger=trigger) as job:
        _run_recorded(engine, lambda r: r.reconcile_window(on_progress), report, gateway,
                      now=now, job_run_id=job.id)
        job.summary = report.as_dict()
        job.status = "needs_review" if report.needs_person else "completed"
    return report


def check_registrations(engine: Engine, gateway, registration_ids: Iterable[str], *, now: datetime,
                        trigger: str = "cleanup", dry_run: bool = False,
                        session_ids: Mapping[str, str] | None = None) -> ReconcileReport:
    """Reconcile exactly these registrations, retrieving each one's session from Stripe.

    ``session_ids`` names, per registration id, the session to check instead of the one the
    row records: the caller found it by ``client_reference_id`` (a row that never recorded
    its session, or a customer's second checkout).

    The same rules as a window run apply (auto-fix with the conditional update, review items
    without duplicates), recorded as a ``reconciliation_runs`` row with this ``trigger``.
    ``report.checks`` maps each registration id found to a :class:`RegistrationCheck`
    (the session as Stripe has it now, the mismatch kind, what was done). It takes no lock:
    every write it makes is safe alongside a window run.
    """
    wanted = sorted({canonical for rid in registration_ids if (canonical := valid_uuid(str(rid)))})
    registrations: list[Registration] = []
    with engine.connect() as conn:
        for start in range(0, len(wanted), REGISTRATION_PAGE):
            rows = conn.execute(SQL["registrations_by_id"],
                                {"registration_ids": wanted[start:start + REGISTRATION_PAGE]}).mappings()
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
                if session.get("payment_status") in PAID_PAYMENT_STATUSES:
                    report.stripe_payments_found += 1
            mismatch = assess(session, registration)
            kind = outcome = None
            if mismatch is not None:
                final, outcome = reconciler.handle(mismatch, session, registration, session_is_fresh=True)
                kind = final.kind if final is not None else mismatch.kind
            report.checks[registration.id] = RegistrationCheck(registration.id, lookup, session,
                                                               kind, outcome)

    _run_recorded(engine, body, report, gateway, now=now, job_run_id=None)
    return report


# --- runs started from the dashboard ----------------------------------------------------

@dataclass
class BackgroundRun:
    """``python -m jobs reconcile --json`` running as a child process (the dashboard's Run
    now). Its own process and connection do the writes; the caller only polls."""

    process: Any
    output: Any  # temporary file collecting stdout (the JSON report)
    errors: Any  # temporary file collecting stderr (the one-line reason on failure)
    lookback_days: int
    dry_run: bool
    started_at: datetime

    def poll(self) -> int | None:
        """The exit code once finished, else None."""
        return self.process.poll()

    def outcome(self) -> dict[str, Any]:
        """After it finished: exit code, the JSON report (None on failure) and the message."""
        self.output.seek(0)
        self.errors.seek(0)
        text, errors = self.output.read(), self.errors.read()
        try:
            report = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            report = None
        lines = [line for line in errors.strip().splitlines() if line.strip()]
        return {"exit_code": self.process.returncode, "report": report,
                "message": lines[-1] if lines else ""}


def start_in_background(*, lookback_days: int, dry_run: bool, trigger: str = "dashboard") -> BackgroundRun:
    """Start a reconciliation in a child process with this process's environment."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    command = [sys.executable, "-m", "jobs", "reconcile", "--json", "--trigger", trigger,
               "--lookback-days", str(int(lookback_days))]
    if dry_run:
        command.append("--dry-run")
    output = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    errors = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent,
                               stdout=output, stderr=errors, stdin=subprocess.DEVNULL)
    return BackgroundRun(process, output, errors, int(lookback_days), dry_run,
                         datetime.now(timezone.utc))


# --- command line -------------------------------------------------------------------------

def _lookback(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {value!r}") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError("must be between 1 and 3650 days")
    return days


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lookback-days", type=_lookback, default=7, metavar="N",
                        help="check Checkout Sessions and registrations created in the last N days "
                        "(default %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="record what would be done; change no registration")
    # Who started the run (the dashboard's Run now button passes 'dashboard').
    parser.add_argument("--trigger", choices=TRIGGERS, default="cli", help=argparse.SUPPRESS)


def main(args: argparse.Namespace, ctx) -> int:
    from jobs.stripe_gateway import gateway_from_settings

    gateway = gateway_from_settings(ctx.settings)
    engine = ctx.jobs_engine()
    started = time.monotonic()
    report = run(engine, now=ctx.now(), gateway=gateway, lookback_days=args.lookback_days,
                 dry_run=args.dry_run, trigger=args.trigger)
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        ctx.say(f"reconciliation run {report.run_id}{' (dry run: nothing changed)' if report.dry_run else ''}: "
                f"last {report.lookback_days} days, {report.sessions_checked} sessions in "
                f"{report.pages_read} pages, {report.stripe_requests} Stripe requests, "
                f"{time.monotonic() - started:.1f}s")
        width = max(len(name) for name in FIVE_FIELDS)
        for name, value in report.five().items():
            ctx.say(f"  {name:<{width}}  {value}")
        for kind, count in sorted(report.by_kind.items()):
            ctx.say(f"    {kind}: {count} ({KIND_RULES[kind][0].replace('_', ' ')})")
        if report.already_resolved:
            ctx.say(f"  {report.already_resolved} mismatch(es) already resolved by a person were left closed")
        if report.fixes_superseded:
            ctx.say(f"  {report.fixes_superseded} fix(es) not needed: the registration changed meanwhile")
        if report.open_review_items:
            ctx.say(f"{report.open_review_items} item(s) need a person: python -m jobs review")
    from jobs.cli import EXIT_NEEDS_PERSON, EXIT_OK

    return EXIT_NEEDS_PERSON if report.needs_person else EXIT_OK
