"""Keep the database lean without losing anything a person could still need.

Two steps, each safe on a live database:

1. Old completed webhook events move to ``webhook_events_archive`` in batches, each one
   short statement (``FOR UPDATE SKIP LOCKED``, a few thousand rows), so the webhook
   handler's inserts never wait long. Failed, pending and processing events are never moved.
2. Stale pending registrations are checked against Stripe first. A paid session means the
   registration is handed to reconciliation (fixed, or queued for a person), never removed.
   Only when Stripe confirms the session expired, says there is no such session, or there
   never was one, is the row moved to ``registrations_archive`` with the reason, and only
   if it is still pending and unchanged (a webhook landing meanwhile wins). A session that
   is open, or complete and awaiting a delayed payment, can still be paid: the row stays.

Every run, dry or not, is recorded in ``cleanup_runs`` (and ``job_runs``). Without
``STRIPE_API_KEY`` the run stops before doing anything (exit 2) unless
``--skip-registrations`` is given: no registration is ever removed without asking Stripe.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.errors import ConfigError, JobFailed, MonitorError
from core.settings import get_settings
from jobs import health_snapshot, sql_files
from core.checkout import PAID_STATUSES as PAID_PAYMENT_STATUSES
from jobs.reconcile import check_registrations
from jobs.runtime import JobRun, error_line, recorded_run
from jobs.stripe_gateway import gateway_from_settings

HELP = ("archive old completed webhook events in batches and remove stale pending "
        "registrations that Stripe confirms were never paid")
JOB = "cleanup"
SQL = sql_files.load("cleanup.sql")

DEFAULT_PENDING_DAYS = 7
DEFAULT_EVENTS_DAYS = 90
# Stripe can redeliver an event for 3 days and resend it by hand for up to 30; the handler's
# duplicate check reads webhook_events, so younger events must stay there.
MIN_EVENTS_DAYS = 30
# Small enough that a batch commits in a fraction of a second (its WAL flush is what a
# concurrent handler insert may wait behind), large enough to keep the per-statement cost low.
DEFAULT_BATCH_SIZE = 2000
REGISTRATION_PAGE = 100
# A registration's Checkout Session is created right around the registration. Sessions
# created in this window are listed once per page of stale rows, which finds the session of
# a row that never stored its session id (client_reference_id is the registration id) and
# saves one retrieve per row.
SESSION_SEARCH_BEFORE = timedelta(hours=1)
SESSION_SEARCH_AFTER = timedelta(days=1)
FIRST_KEY = (datetime(1, 1, 1, tzinfo=timezone.utc), "00000000-0000-0000-0000-000000000000")
# A batch waits at most this long for a table lock (e.g. a migration running), then fails
# rather than queueing the handler's inserts behind it.
BATCH_SETTINGS = (sa.text("SET LOCAL lock_timeout = '5s'"), sa.text("SET LOCAL statement_timeout = '120s'"))

Progress = Callable[[str], None]


# --- deciding what happens to one stale registration --------------------------------------

@dataclass(frozen=True)
class Decision:
    """What cleanup does with one stale pending registration, and why."""

    action: str  # "archive", "reconcile" (paid: never removed), "keep", "unchecked"
    reason: str
    session_status: str | None = None
    payment_status: str | None = None
    session_id: str | None = None  # the paid session, for "reconcile"


def slim_session(session: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields cleanup reads, so thousands of listed sessions stay small in memory."""
    return {key: session.get(key) for key in ("id", "status", "payment_status", "client_reference_id", "created")}


def key_mode(api_key: str | None) -> str | None:
    """'live' or 'test' for sk_/rk_ keys, None when it cannot be told."""
    for mode in ("live", "test"):
        if api_key and f"_{mode}_" in api_key:
            return mode
    return None


def session_mode(session_id: str) -> str | None:
    for mode in ("live", "test"):
        if session_id.startswith(f"cs_{mode}_"):
            return mode
    return None


def other_mode(session_id: str | None, api_key_mode: str | None) -> bool:
    """True when the session is known to belong to the other Stripe mode than the key's."""
    return bool(session_id and api_key_mode and session_mode(session_id) not in (None, api_key_mode))


def decide(session_id: str | None, own_session: Mapping[str, Any] | None,
           related_sessions: Iterable[Mapping[str, Any]] = (), *, api_key_mode: str | None = None) -> Decision:
    """Decide from what Stripe said: ``own_session`` is the row's session (None: Stripe has no
    such session), ``related_sessions`` those carrying the registration id as
    client_reference_id (a customer may have started checkout more than once)."""
    if other_mode(session_id, api_key_mode):
        # A test key cannot see live sessions: "no such session" would be a lie.
        return Decision("unchecked", "other_stripe_mode")
    sessions = [own_session] if own_session else []
    sessions += [s for s in related_sessions if not own_session or s["id"] != own_session["id"]]
    shown = sessions[0] if sessions else {}
    facts = {"session_status": shown.get("status"), "payment_status": shown.get("payment_status")}
    for session in sessions:
        if session.get("payment_status") in PAID_PAYMENT_STATUSES:
            return Decision("reconcile", "paid", session.get("status"), session.get("payment_status"),
                            session_id=session.get("id"))
    for session in sessions:
        if session.get("status") == "open":
            return Decision("keep", "session_open", "open", session.get("payment_status"))
    for session in sessions:
        if session.get("status") == "complete":
            # Delayed payment methods (bank debits) complete unpaid and are paid days later.
            return Decision("keep", "awaiting_payment", "complete", session.get("payment_status"))
    if sessions:
        return Decision("archive", "session_expired", **facts)
    if session_id:
        return Decision("archive", "session_not_found")
    return Decision("archive", "no_session")


class SessionIndex:
    """Checkout Sessions listed from Stripe by creation window, indexed by id and by
    client_reference_id. Windows arrive in increasing order (rows are read oldest first),
    so each second of Stripe's history is listed at most once per run."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.by_id: dict[str, dict] = {}
        self.by_reference: dict[str, list[dict]] = defaultdict(list)
        self.covered_until: int | None = None

    def cover(self, start: datetime, end: datetime) -> None:
        start_s, end_s = math.floor(start.timestamp()), math.ceil(end.timestamp())
        if self.covered_until is not None:
            if end_s <= self.covered_until:
                return
            start_s = max(start_s, self.covered_until)
        for session in self.gateway.iter_checkout_sessions(created_gte=start_s, created_lt=end_s):
            self.add(slim_session(session))
        self.covered_until = end_s

    def add(self, session: dict) -> None:
        if session["id"] in self.by_id:
            return
        self.by_id[session["id"]] = session
        if session.get("client_reference_id"):
            self.by_reference[session["client_reference_id"]].append(session)

    def session(self, session_id: str) -> dict | None:
        """The session by id, from the listing or retrieved; None when Stripe has none."""
        if session_id not in self.by_id:
            found = self.gateway.retrieve_checkout_session(session_id)
            if found is None:
                return None
            self.add(slim_session(found))
        return self.by_id[session_id]

    def prune(self, before: datetime) -> None:
        """Forget sessions no later row's window can reach."""
        limit = before.timestamp()
        for session_id in [sid for sid, s in self.by_id.items() if (s.get("created") or 0) < limit]:
            session = self.by_id.pop(session_id)
            related = self.by_reference.get(session.get("client_reference_id") or "")
            if related is not None:
                related[:] = [s for s in related if s["id"] != session_id]
                if not related:
                    del self.by_reference[session["client_reference_id"]]


def search_windows(created: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Merged [created - before, created + after) windows of sorted creation times."""
    windows: list[tuple[datetime, datetime]] = []
    for moment in created:
        start, end = moment - SESSION_SEARCH_BEFORE, moment + SESSION_SEARCH_AFTER
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows


# --- the run --------------------------------------------------------------------------------

@dataclass
class CleanupReport:
    run_id: int | None = None
    status: str = "running"
    dry_run: bool = False
    pending_days: int = DEFAULT_PENDING_DAYS
    events_days: int = DEFAULT_EVENTS_DAYS
    pending_cutoff: datetime | None = None
    events_cutoff: datetime | None = None
    registrations_skipped: bool = False
    stale_pending_found: int = 0
    registrations_archived: int = 0
    registrations_kept_paid: int = 0
    registrations_kept_open: int = 0
    registrations_unchecked: int = 0
    registrations_fixed: int = 0
    registrations_queued: int = 0
    reconciliation_run_id: int | None = None
    events_matched: int = 0
    events_archived: int = 0
    event_batches: int = 0
    events_kept_failed: int = 0
    events_kept_open: int = 0
    archive_reasons: Counter = field(default_factory=Counter)
    kept_reasons: Counter = field(default_factory=Counter)
    changed_meanwhile: int = 0
    paid_unresolved: list[str] = field(default_factory=list)
    events_per_second: float | None = None
    health_snapshot_id: int | None = None
    error: str | None = None

    @property
    def needs_person(self) -> bool:
        return self.registrations_queued > 0 or bool(self.paid_unresolved)

    def details(self) -> dict:
        return {"archive_reasons": dict(self.archive_reasons), "kept_reasons": dict(self.kept_reasons),
                "changed_meanwhile": self.changed_meanwhile, "paid_unresolved": self.paid_unresolved,
                "events_per_second": self.events_per_second,
                "health_snapshot_id": self.health_snapshot_id}

    def as_dict(self) -> dict:
        data = asdict(self)
        data["archive_reasons"], data["kept_reasons"] = dict(self.archive_reasons), dict(self.kept_reasons)
        data["needs_person"] = self.needs_person
        return data

    def summary_lines(self) -> list[str]:
        would = "would be " if self.dry_run else ""
        lines = [f"cleanup run {self.run_id}{' (dry run: nothing changed)' if self.dry_run else ''}: {self.status}"]
        archived = self.events_matched if self.dry_run else self.events_archived
        lines.append(f"webhook events older than {self.events_days} days: {archived:,} completed {would}archived"
                     + (f" in {self.event_batches} batches" if self.event_batches else "")
                     + f"; kept {self.events_kept_failed:,} failed and {self.events_kept_open:,} pending/processing")
        if self.registrations_skipped:
            lines.append("stale pending registrations: skipped (--skip-registrations)")
        else:
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.archive_reasons.items())) or "none"
            lines.append(f"stale pending registrations older than {self.pending_days} days: "
                         f"{self.stale_pending_found:,} found; {self.registrations_archived:,} {would}archived ({reasons})")
            lines.append(f"  paid in Stripe, handed to reconciliation: {self.registrations_kept_paid:,} "
                         f"({self.registrations_fixed} {'would be ' if self.dry_run else ''}fixed, "
                         f"{self.registrations_queued} for manual review)")
            if self.registrations_kept_open or self.registrations_unchecked or self.changed_meanwhile:
                lines.append(f"  kept: {self.registrations_kept_open:,} whose session can still be paid, "
                             f"{self.registrations_unchecked:,} not checked, "
                             f"{self.changed_meanwhile:,} changed while cleanup ran")
        if self.error:
            lines.append(f"error: {self.error}")
        if self.paid_unresolved:
            lines.append(f"  paid in Stripe but not matched by reconciliation (kept): {', '.join(self.paid_unresolved)}")
        if self.needs_person:
            lines.append("needs a person: see the Reconciliation page's review queue")
        return lines


class _Cleanup:
    def __init__(self, engine: Engine, report: CleanupReport, *, now: datetime, trigger: str,
                 batch_size: int, progress: Progress | None):
        self.engine = engine
        self.report = report
        self.now = now
        self.trigger = trigger
        self.batch_size = batch_size
        self.progress = progress or (lambda _message: None)
        self.clock = time.monotonic()

    # bookkeeping
    def start(self) -> None:
        r = self.report
        with self.engine.begin() as conn:
            r.run_id = conn.execute(SQL["start_run"], {
                "trigger": self.trigger, "dry_run": r.dry_run, "pending_days": r.pending_days,
                "events_days": r.events_days, "pending_cutoff": r.pending_cutoff,
                "events_cutoff": r.events_cutoff, "registrations_skipped": r.registrations_skipped,
                "started_at": self.now}).scalar_one()

    def save(self, *, finished: bool = False) -> None:
        r = self.report
        elapsed = time.monotonic() - self.clock
        counters = {name: getattr(r, name) for name in (
            "stale_pending_found", "registrations_archived", "registrations_kept_paid",
            "registrations_kept_open", "registrations_unchecked", "registrations_fixed",
            "registrations_queued", "reconciliation_run_id", "events_matched", "events_archived",
            "event_batches", "events_kept_failed", "events_kept_open", "error")}
        with self.engine.begin() as conn:
            conn.execute(SQL["update_run"], {
                **counters, "id": r.run_id, "status": r.status,
                "finished_at": self.now + timedelta(seconds=elapsed) if finished else None,
                "duration_ms": int(elapsed * 1000) if finished else None,
                "details": json.dumps(r.details())})

    # step 1
    def archive_events(self) -> None:
        r = self.report
        with self.engine.connect() as conn:
            counts = conn.execute(SQL["count_old_events"], {"cutoff": r.events_cutoff}).one()
        r.events_matched, r.events_kept_failed, r.events_kept_open = counts.completed, counts.failed, counts.open
        self.save()
        if r.dry_run or not r.events_matched:
            return
        started = time.monotonic()
        resume_from = FIRST_KEY[0]
        while True:
            with self.engine.begin() as conn:
                for setting in BATCH_SETTINGS:
                    conn.execute(setting)
                moved, resume_from = conn.execute(SQL["archive_event_batch"], {
                    "cutoff": r.events_cutoff, "resume_from": resume_from, "batch_size": self.batch_size,
                    "archived_at": self.now, "run_id": r.run_id}).one()
            if not moved:
                break
            r.events_archived += moved
            r.event_batches += 1
            r.events_per_second = round(r.events_archived / max(time.monotonic() - started, 1e-6), 1)
            self.save()
            self.progress(f"events: {r.event_batches} batches, {r.events_archived:,} of "
                          f"{r.events_matched:,} moved, {r.events_per_second:,.0f} rows/s")

    # step 2
    def clean_registrations(self, gateway, api_key_mode: str | None) -> None:
        r = self.report
        with self.engine.connect() as conn:
            r.stale_pending_found = conn.execute(SQL["count_stale_pending"], {"cutoff": r.pending_cutoff}).scalar_one()
        self.save()
        if not r.stale_pending_found:
            return
        paid: dict[str, str] = {}  # registration id -> its paid session
        checked = 0
        try:
            self._check_account(gateway, api_key_mode)
            index = SessionIndex(gateway)
            after = FIRST_KEY
            while True:
                with self.engine.connect() as conn:
                    rows = conn.execute(SQL["stale_pending_page"], {
                        "cutoff": r.pending_cutoff, "after_created_at": after[0], "after_id": after[1],
                        "page_size": REGISTRATION_PAGE}).all()
                if not rows:
                    break
                after = (rows[-1].created_at, str(rows[-1].id))
                for start, end in search_windows(row.created_at for row in rows):
                    index.cover(start, end)
                decisions = []
                for row in rows:
                    decision = self._decide(row, index, api_key_mode)
                    decisions.append((row, decision))
                    if decision.action == "reconcile":
                        paid[str(row.id)] = decision.session_id
                self._apply(decisions)
                checked += len(rows)
                index.prune(rows[-1].created_at - SESSION_SEARCH_BEFORE)
                self.save()
                self.progress(f"registrations: {checked:,} of {r.stale_pending_found:,} checked, "
                              f"{r.registrations_archived:,} {'would be ' if r.dry_run else ''}archived")
        except ConfigError:
            raise
        except Exception as exc:
            if not _is_stripe_failure(exc):
                raise
            # Stop asking: rows not yet checked stay as they are until Stripe answers again.
            r.registrations_unchecked += r.stale_pending_found - checked
            r.error = f"Stripe could not be asked about every stale registration: {error_line(exc)}"
        if paid:
            self._hand_to_reconciliation(gateway, paid)
        if r.error:
            raise JobFailed(r.error)

    def _check_account(self, gateway, api_key_mode: str | None) -> None:
        """Refuse to trust "no such session" answers from a key of another Stripe account."""
        with self.engine.connect() as conn:
            known = conn.execute(SQL["canary_session"]).scalar()
        if not known or other_mode(known, api_key_mode):
            return
        if gateway.retrieve_checkout_session(known) is None:
            raise ConfigError(f"Stripe does not know Checkout Session {known} of a completed registration: "
                              "STRIPE_API_KEY seems to belong to another Stripe account; no registration was removed")

    def _decide(self, row, index: SessionIndex, api_key_mode: str | None) -> Decision:
        session_id = row.stripe_checkout_session_id
        if other_mode(session_id, api_key_mode):  # decided without asking Stripe in vain
            return decide(session_id, None, api_key_mode=api_key_mode)
        own = index.session(session_id) if session_id else None
        return decide(session_id, own, index.by_reference.get(str(row.id), ()), api_key_mode=api_key_mode)

    def _apply(self, decisions: list[tuple[Any, Decision]]) -> None:
        r = self.report
        archive = []
        for row, decision in decisions:
            if decision.action == "archive":
                archive.append({"id": str(row.id), "row_version": row.row_version, "reason": decision.reason,
                                "session_status": decision.session_status,
                                "payment_status": decision.payment_status})
            elif decision.action == "reconcile":
                r.registrations_kept_paid += 1
            elif decision.action == "keep":
                r.registrations_kept_open += 1
                r.kept_reasons[decision.reason] += 1
            else:
                r.registrations_unchecked += 1
                r.kept_reasons[decision.reason] += 1
        if not archive:
            return
        if r.dry_run:
            moved_ids = {item["id"] for item in archive}
        else:
            with self.engine.begin() as conn:
                moved_ids = {str(i) for i in conn.execute(SQL["archive_registrations"], {
                    "decisions": json.dumps(archive), "archived_at": self.now, "run_id": r.run_id}).scalars()}
        for item in archive:
            if item["id"] in moved_ids:
                r.registrations_archived += 1
                r.archive_reasons[item["reason"]] += 1
            else:
                r.changed_meanwhile += 1

    def _hand_to_reconciliation(self, gateway, paid_sessions: dict[str, str]) -> None:
        """Paid in Stripe: reconciliation fixes the row or queues it for a person, judging it
        by the paid session cleanup found (possibly through client_reference_id)."""
        r = self.report
        registration_ids = list(paid_sessions)
        result = check_registrations(self.engine, gateway, registration_ids, now=self.now,
                                     trigger="cleanup", dry_run=r.dry_run, session_ids=paid_sessions)
        r.registrations_fixed = result.auto_fixed_count
        r.registrations_queued = result.manual_review_needed
        r.reconciliation_run_id = result.run_id
        # Anything reconciliation did not classify stays (never removed) and is listed.
        r.paid_unresolved = sorted(rid for rid in registration_ids
                                   if (check := result.checks.get(rid)) is None or check.kind is None)

    def record_health(self) -> None:
        try:
            with self.engine.begin() as conn:
                self.report.health_snapshot_id = health_snapshot.take(conn, now=self.now, trigger="cleanup").id
        except sa.exc.SQLAlchemyError as exc:  # a missed snapshot must not fail a finished cleanup
            self.progress(f"health snapshot not recorded: {error_line(exc)}")


def _is_stripe_failure(exc: BaseException) -> bool:
    """Errors meaning "Stripe did not answer" (the stripe library's or the gateway's own)."""
    return isinstance(exc, MonitorError) or type(exc).__module__.split(".")[0] == "stripe"


def run(engine: Engine, *, now: datetime, gateway=None, pending_days: int = DEFAULT_PENDING_DAYS,
        events_days: int = DEFAULT_EVENTS_DAYS, dry_run: bool = False, skip_registrations: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE, trigger: str = "cli", progress: Progress | None = None) -> CleanupReport:
    """Run cleanup under its advisory lock, recorded in cleanup_runs and job_runs.

    ``gateway`` is the Stripe gateway (built from the settings when None). Returns the report;
    a run Stripe interrupted comes back with status 'failed' and its error (rows not checked
    are left alone). Raises ConfigError (nothing done) without a Stripe key unless
    ``skip_registrations``, and JobBusy when another cleanup holds the lock.
    """
    if pending_days < 1:
        raise ConfigError("--pending-days must be at least 1")
    if events_days < MIN_EVENTS_DAYS:
        raise ConfigError(f"--events-days must be at least {MIN_EVENTS_DAYS}: Stripe may still redeliver or "
                          "resend younger events, and the handler's duplicate check reads webhook_events")
    if not 1 <= batch_size <= 50_000:
        raise ConfigError("--batch-size must be between 1 and 50000")
    report = CleanupReport(dry_run=dry_run, pending_days=pending_days, events_days=events_days,
                           pending_cutoff=now - timedelta(days=pending_days),
                           events_cutoff=now - timedelta(days=events_days),
                           registrations_skipped=skip_registrations)
    cleanup = _Cleanup(engine, report, now=now, trigger=trigger, batch_size=batch_size, progress=progress)
    try:
        with recorded_run(engine, JOB, now=now, trigger=trigger) as job:
            cleanup.start()
            try:
                api_key = get_settings().STRIPE_API_KEY
                if not skip_registrations and gateway is None:
                    if not api_key:
                        raise ConfigError("STRIPE_API_KEY is not set: cleanup asks Stripe before removing any "
                                          "registration. Set it, or pass --skip-registrations to archive "
                                          "webhook events only")
                    gateway = gateway_from_settings()
                cleanup.archive_events()
                if not skip_registrations:
                    cleanup.clean_registrations(gateway, key_mode(api_key))
                if not dry_run:
                    cleanup.record_health()
                report.status = "needs_review" if report.needs_person else "completed"
            except BaseException as exc:
                report.status = "failed"
                report.error = report.error or error_line(exc)
                raise
            finally:
                cleanup.save(finished=True)
                _summarise(job, report)
    except JobFailed:
        if report.run_id is None:
            raise
    return report


def _summarise(job: JobRun, report: CleanupReport) -> None:
    job.summary = {key: value for key, value in report.as_dict().items()
                   if key in ("run_id", "dry_run", "stale_pending_found", "registrations_archived",
                              "registrations_kept_paid", "registrations_queued", "events_archived",
                              "events_matched", "error")}
    if report.status == "needs_review":
        job.status = "needs_review"


# --- command line -------------------------------------------------------------------------

class TerminalProgress:
    """One self-overwriting status line on a terminal; nothing when output is redirected."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.shown = False

    def __call__(self, message: str) -> None:
        self.stream.write(f"\r\x1b[2K{message}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be archived or removed; change nothing (still recorded)")
    parser.add_argument("--pending-days", type=_positive_int, default=DEFAULT_PENDING_DAYS, metavar="N",
                        help=f"pending registrations older than this are checked (default {DEFAULT_PENDING_DAYS})")
    parser.add_argument("--events-days", type=_positive_int, default=DEFAULT_EVENTS_DAYS, metavar="N",
                        help=f"completed events older than this are archived (default {DEFAULT_EVENTS_DAYS}, "
                        f"at least {MIN_EVENTS_DAYS})")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"events moved per short transaction (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--skip-registrations", action="store_true",
                        help="archive webhook events only; leave registrations alone (no Stripe key needed)")


def main(args: argparse.Namespace, ctx) -> int:
    from jobs.cli import EXIT_FAILED, EXIT_NEEDS_PERSON, EXIT_OK

    progress = TerminalProgress() if not args.json and sys.stderr.isatty() else None
    try:
        report = run(ctx.jobs_engine(), now=ctx.now(), pending_days=args.pending_days,
                     events_days=args.events_days, dry_run=args.dry_run,
                     skip_registrations=args.skip_registrations, batch_size=args.batch_size,
                     trigger=ctx.trigger, progress=progress)
    finally:
        if progress:
            progress.close()
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        for line in report.summary_lines():
            ctx.say(line)
    if report.status == "failed":
        return EXIT_FAILED
    return EXIT_NEEDS_PERSON if report.needs_person else EXIT_OK
