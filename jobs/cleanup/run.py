"""One cleanup run's report and bookkeeping, shared by the command and its steps (events,
registrations): the run's row in ``cleanup_runs``, its counters, progress, and its duration
on a monotonic clock."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.sql import load_package
from jobs.cleanup import history as cleanup_history
from jobs.health import snapshot as health_snapshot
from jobs.runtime import error_line

SQL = load_package("jobs.cleanup", "run.sql")
JOB = "cleanup"  # its name in job_runs and its advisory lock

DEFAULT_PENDING_DAYS = 7
DEFAULT_EVENTS_DAYS = 90
# Stripe can redeliver an event for 3 days and resend it by hand for up to 30; the handler's
# duplicate check reads webhook_events, so younger events must stay there.
MIN_EVENTS_DAYS = 30
Progress = Callable[[str], None]


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
    history_days: int = cleanup_history.DEFAULT_HISTORY_DAYS
    # The monitor's own history removed (or that would be): job runs, notifications, sweep runs.
    history_pruned: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def needs_person(self) -> bool:
        return self.registrations_queued > 0 or bool(self.paid_unresolved)

    def details(self) -> dict:
        return {"archive_reasons": dict(self.archive_reasons), "kept_reasons": dict(self.kept_reasons),
                "changed_meanwhile": self.changed_meanwhile, "paid_unresolved": self.paid_unresolved,
                "events_per_second": self.events_per_second,
                "health_snapshot_id": self.health_snapshot_id,
                "history_days": self.history_days, "history_pruned": self.history_pruned}

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
        if self.history_pruned:
            lines.append(f"the monitor's history older than {self.history_days} days: "
                         + ", ".join(f"{n:,} {table.replace('_', ' ')}" for table, n in self.history_pruned.items())
                         + f" {would or ''}removed")
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


class CleanupRun:
    """One run's bookkeeping, shared by the steps: its row in ``cleanup_runs``, the report,
    progress, and the run's duration on a monotonic clock."""

    def __init__(self, engine: Engine, report: CleanupReport, *, now: datetime, trigger: str,
                 batch_size: int, progress: Progress | None):
        self.engine = engine
        self.report = report
        self.now = now
        self.trigger = trigger
        self.batch_size = batch_size
        self.progress = progress or (lambda _message: None)
        self.clock = time.monotonic()

    def start(self) -> None:
        r = self.report
        with self.engine.begin() as conn:
            r.run_id = SQL.execute(
                conn, "start_run", trigger=self.trigger, dry_run=r.dry_run, pending_days=r.pending_days,
                events_days=r.events_days, pending_cutoff=r.pending_cutoff,
                events_cutoff=r.events_cutoff, registrations_skipped=r.registrations_skipped,
                started_at=self.now).scalar_one()

    def save(self, *, finished: bool = False) -> None:
        """Write the counters as they stand; ``finished`` also the end time and duration
        (the run's ``now`` plus the monotonic time it took, however far in the past ``now`` is)."""
        r = self.report
        elapsed = time.monotonic() - self.clock
        counters = {name: getattr(r, name) for name in (
            "stale_pending_found", "registrations_archived", "registrations_kept_paid",
            "registrations_kept_open", "registrations_unchecked", "registrations_fixed",
            "registrations_queued", "reconciliation_run_id", "events_matched", "events_archived",
            "event_batches", "events_kept_failed", "events_kept_open", "error")}
        with self.engine.begin() as conn:
            SQL.execute(conn, "update_run", **counters, id=r.run_id, status=r.status,
                        finished_at=self.now + timedelta(seconds=elapsed) if finished else None,
                        duration_ms=int(elapsed * 1000) if finished else None,
                        details=json.dumps(r.details()))

    def record_health(self) -> None:
        try:
            with self.engine.begin() as conn:
                self.report.health_snapshot_id = health_snapshot.take(conn, now=self.now, trigger="cleanup").id
        except sa.exc.SQLAlchemyError as exc:  # a missed snapshot must not fail a finished cleanup
            self.progress(f"health snapshot not recorded: {error_line(exc)}")
