"""Re-deliver failed events to the app's endpoint (``MONITOR_REPLAY_URL``), as Stripe would.

``python -m jobs retry`` re-delivers the events named with ``--event-id``, else every failed
event whose automatic retry is due by the error policy (``next_retry_at`` planned by
``webhook_event_fail``), oldest plan first. Each delivery goes through the app's ordinary
path (jobs/replay/redeliver.py: the stored JSON, a fresh signature with the first
STRIPE_WEBHOOK_SECRET), so the app records the attempt, applies the event once, and plans
the next retry itself if it fails again.

- Only ``failed`` events are re-delivered, and ``processing`` ones whose worker is gone (its
  attempt held the event's liveness lock, migrations/functions/tracking.sql, and the lock is
  free: a worker killed or a database restarted mid-attempt); never a completed one, nor one
  a live worker is processing.
- Each event is claimed in the database for the run (``retry_claimed_until``), so several
  retry processes (the schedule's, a dashboard's Retry now, a person's) can overlap and still
  deliver each event once. That claim, not the job lock, is what makes overlapping runs
  safe, so ``retry`` does not take the job lock: a long backlog does not make the next
  minute's run skip.
- A bounded number of deliveries run at once (``--concurrency``, default 4).
- A run whose own database session died (PostgreSQL restarted, a failover) gives back its
  claims (retried while the database comes back), stops, and fails (exit 1, recorded
  failed with the reason); the next run re-delivers the rest.
- An endpoint that does not accept connections, or refuses the signature, stops the run
  (exit 1); what was not delivered is released unchanged.
- ``--dry-run`` shows the plan (how many, which categories, the oldest) and changes nothing.
- Exit 3 while failed events remain that no automatic retry will fix (a person must look).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy.engine import Engine

from core.error_policy import CATEGORIES
from core.errors import EXIT_NEEDS_PERSON, EXIT_OK, JobFailed
from core.sql import load_package
from jobs.cli_support import terminal_progress, whole_number
from jobs.replay.redeliver import DeliveryResult, Redeliverer, event_body
from jobs.runtime import DatabaseLost, JobRun, recorded_run, while_database_unreachable

HELP = "re-deliver failed events to MONITOR_REPLAY_URL: the given ones, else those whose retry is due"
JOB = "retry"
SQL = load_package("jobs.replay", "retry.sql")

DEFAULT_CONCURRENCY = 4
CHUNK = 200  # events claimed at a time
CLAIM_LEASE = timedelta(minutes=10)  # a crashed run's claims lapse after this
SHOWN_IDS = 50

Progress = Callable[[str], None]
RedelivererFactory = Callable[[], Redeliverer]


@dataclass
class RetryReport:
    dry_run: bool
    mode: str  # "given" or "due"
    planned: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    oldest_created_at: datetime | None = None
    oldest_next_retry_at: datetime | None = None
    event_ids: list[str] = field(default_factory=list)  # the first SHOWN_IDS planned
    # events named with --event-id that were not re-delivered, with why
    skipped: dict[str, str] = field(default_factory=dict)
    delivered: int = 0
    completed: int = 0  # processed, ignored or duplicate
    failed_again: int = 0  # the app failed again; it planned the next retry itself
    failed_permanently: int = 0  # answered 2xx "retry": false: needs a person
    busy: int = 0  # another delivery was processing it (409)
    no_answer: int = 0  # connected, but no answer in time
    outcomes: dict[str, str] = field(default_factory=dict)  # event id -> outcome (first SHOWN_IDS)
    # after the run: failed events by category waiting for a retry / needing a person
    remaining_planned: int = 0
    remaining_needs_person: int = 0
    needs_person_by_category: dict[str, int] = field(default_factory=dict)
    next_retry_at: datetime | None = None
    events_per_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _outcome(result: DeliveryResult) -> str:
    if not result.reached:
        return "no_answer"
    answer = result.answer if isinstance(result.answer, dict) else {}
    if result.status == 409:
        return "busy"
    if result.accepted:
        return "failed_permanently" if answer.get("status") == "failed" else "completed"
    return "failed_again"


class _EndpointDown(Exception):
    pass


def run(engine: Engine, *, now: datetime, redeliverer: RedelivererFactory | Redeliverer | None = None,
        event_ids: list[str] | None = None, category: str | None = None, limit: int | None = None,
        dry_run: bool = False, concurrency: int = DEFAULT_CONCURRENCY, trigger: str = "cli",
        progress: Progress | None = None) -> RetryReport:
    """Plan, then (unless ``dry_run``) re-deliver; recorded in job_runs.

    ``redeliverer`` is a Redeliverer or a factory for one (called only when there is
    something to deliver, so a missing MONITOR_REPLAY_URL only matters then); default: from
    the settings.
    """
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    report = RetryReport(dry_run=dry_run, mode="given" if event_ids else "due")
    say = progress or (lambda _message: None)
    with recorded_run(engine, JOB, now=now, trigger=trigger, lock=False) as job:
        plan = _plan(engine, report, now=now, event_ids=event_ids, category=category, limit=limit)
        if not dry_run and plan:
            if redeliverer is None:
                redeliverer = Redeliverer.from_settings
            client = redeliverer if isinstance(redeliverer, Redeliverer) else redeliverer()
            try:
                _deliver(engine, report, client, now=now, plan=plan, event_ids=event_ids, category=category,
                         limit=limit, concurrency=concurrency, say=say, job=job)
            finally:
                if client is not redeliverer:
                    client.close()
        _remaining(engine, report)
        job.summary = {key: value for key, value in report.as_dict().items()
                       if key not in ("event_ids", "outcomes", "skipped")}
        if report.remaining_needs_person:
            job.status = "needs_review"
    return report


def _plan(engine: Engine, report: RetryReport, *, now: datetime, event_ids: list[str] | None,
          category: str | None, limit: int | None) -> list[str]:
    if event_ids:
        wanted = list(dict.fromkeys(event_ids))
        rows = {row["stripe_event_id"]: row for row in SQL.all(engine, "given_events", ids=wanted)}
        planned = []
        for event_id in wanted:
            row = rows.get(event_id)
            if row is None:
                report.skipped[event_id] = "no such event"
            elif row["processing_status"] != "failed":
                report.skipped[event_id] = f"{row['processing_status']}, not failed"
            elif category and row["error_category"] != category:
                report.skipped[event_id] = f"category {row['error_category']}, not {category}"
            else:
                planned.append(row)
        planned = planned[:limit] if limit else planned
    else:
        planned = SQL.all(engine, "due_events", now=now, category=category, exclude=[],
                          limit=limit or 2_147_483_647)
    report.planned = len(planned)
    report.by_category = dict(Counter(row["error_category"] or "unknown" for row in planned))
    report.oldest_created_at = min((row["created_at"] for row in planned), default=None)
    report.oldest_next_retry_at = min((row["next_retry_at"] for row in planned if row["next_retry_at"]),
                                      default=None)
    report.event_ids = [row["stripe_event_id"] for row in planned[:SHOWN_IDS]]
    return [row["stripe_event_id"] for row in planned]


def _deliver(engine: Engine, report: RetryReport, client: Redeliverer, *, now: datetime, plan: list[str],
             event_ids: list[str] | None, category: str | None, limit: int | None, concurrency: int,
             say: Progress, job: JobRun) -> None:
    until = now + CLAIM_LEASE
    tried: list[str] = []
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    down: list[str] = []
    started = time.monotonic()
    total = len(plan)

    def deliver_one(row: dict) -> None:
        if stop.is_set():
            return
        result = client.deliver(event_body(row))
        if not result.connected:
            stop.set()
            down.append(result.error or "no connection")
            return
        if result.status == 400 and isinstance(result.answer, dict) and result.answer.get("reason") == "bad_signature":
            stop.set()
            down.append("the endpoint refused the signature: its secret is not the first STRIPE_WEBHOOK_SECRET")
            return
        outcome = _outcome(result)
        with lock:
            counts[outcome] += 1
            report.delivered += 1
            if len(report.outcomes) < SHOWN_IDS:
                report.outcomes[row["stripe_event_id"]] = outcome

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending = list(plan)
        while pending and not stop.is_set():
            chunk, pending = pending[:CHUNK], pending[CHUNK:]
            with engine.begin() as conn:  # committed at once: the claim is what other runs see
                claimed = SQL.all(conn, "claim_events", ids=chunk, now=now, until=until)
            claimed_ids = [row["stripe_event_id"] for row in claimed]
            tried.extend(chunk)
            try:
                list(pool.map(deliver_one, claimed))
            finally:
                # Also after a database restart: unreleased claims would keep these events
                # from the next run until the lease lapses.
                _release(engine, claimed_ids, until)
            try:
                # The run's own database session died (a restart, a failover): stop here,
                # claims given back, and fail clearly; the next run re-delivers the rest.
                job.check_session()
            except DatabaseLost as exc:
                _tally(report, counts, started)
                raise DatabaseLost(f"{exc}; {report.delivered} of {report.planned} events were re-delivered "
                                   "(during the outage the endpoint may have answered 503), the rest were "
                                   "given back unchanged") from None
            say(f"re-delivered {report.delivered:,} of {total:,}")
            job.report_progress(done=report.delivered, total=total, completed=counts["completed"],
                                message=f"re-delivered {report.delivered:,} of {total:,}")
            if not pending and not event_ids and (limit is None or len(tried) < limit):
                # Due mode: events that became due while this run worked, not tried yet.
                more = SQL.all(engine, "due_events", now=now, category=category, exclude=tried,
                               limit=min(CHUNK, (limit - len(tried)) if limit else CHUNK))
                pending = [row["stripe_event_id"] for row in more]
                total += len(pending)
    _tally(report, counts, started)
    if down:
        raise JobFailed(f"MONITOR_REPLAY_URL ({client.host}) did not take the re-deliveries: {down[0]}; "
                        f"{report.delivered} of {report.planned} were delivered, the rest are unchanged")


def _tally(report: RetryReport, counts: Counter, started: float) -> None:
    elapsed = time.monotonic() - started
    report.completed = counts["completed"]
    report.failed_again = counts["failed_again"]
    report.failed_permanently = counts["failed_permanently"]
    report.busy = counts["busy"]
    report.no_answer = counts["no_answer"]
    report.events_per_s = round(report.delivered / elapsed, 1) if elapsed > 0 and report.delivered else None


@while_database_unreachable
def _release(engine: Engine, ids: list[str], until: datetime) -> None:
    """Give back this run's claims (retried while the database is restarting)."""
    with engine.begin() as conn:
        SQL.execute(conn, "release_events", ids=ids, until=until)


def _remaining(engine: Engine, report: RetryReport) -> None:
    for row in SQL.all(engine, "remaining_failures"):
        report.remaining_planned += row["planned"]
        report.remaining_needs_person += row["needs_person"]
        if row["needs_person"]:
            report.needs_person_by_category[row["category"] or "unknown"] = row["needs_person"]
        if row["next_retry_at"] and (report.next_retry_at is None or row["next_retry_at"] < report.next_retry_at):
            report.next_retry_at = row["next_retry_at"]


# --- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event-id", action="append", dest="event_ids", metavar="ID",
                        help="re-deliver this failed event (repeatable); default: every event whose retry is due")
    parser.add_argument("--category", choices=CATEGORIES, help="only failures of this category")
    parser.add_argument("--limit", type=whole_number(minimum=1), metavar="N", help="at most N events")
    parser.add_argument("--dry-run", action="store_true", help="show the plan (how many, which categories, the "
                        "oldest); deliver nothing")
    parser.add_argument("--concurrency", type=whole_number(minimum=1), default=DEFAULT_CONCURRENCY, metavar="N",
                        help=f"deliveries in flight at once (default {DEFAULT_CONCURRENCY})")


def main(args: argparse.Namespace, ctx) -> int:
    with terminal_progress(json_output=ctx.json_output) as progress:
        report = run(ctx.jobs_engine(), now=ctx.now(), event_ids=args.event_ids, category=args.category,
                     limit=args.limit, dry_run=args.dry_run, concurrency=args.concurrency,
                     trigger=ctx.trigger, progress=progress,
                     redeliverer=lambda: Redeliverer.from_settings(ctx.settings))
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        _print(report, ctx)
    return EXIT_NEEDS_PERSON if report.remaining_needs_person else EXIT_OK


def _print(report: RetryReport, ctx) -> None:
    for event_id, why in report.skipped.items():
        ctx.say(f"not re-delivered: {event_id} ({why})")
    what = "given" if report.mode == "given" else "due"
    categories = ", ".join(f"{name} {count}" for name, count in sorted(report.by_category.items())) or "none"
    if report.dry_run:
        ctx.say(f"dry run: would re-deliver {report.planned} {what} event(s) ({categories})"
                + (f"; oldest created {report.oldest_created_at:%Y-%m-%d %H:%M} UTC" if report.oldest_created_at else ""))
        for event_id in report.event_ids:
            ctx.say(f"  {event_id}")
    else:
        ctx.say(f"re-delivered {report.delivered} of {report.planned} {what} event(s) ({categories}): "
                f"{report.completed} completed, {report.failed_again} failed again (retry planned by the app), "
                f"{report.failed_permanently} failed for good, {report.busy} busy, {report.no_answer} unanswered")
    if report.remaining_needs_person:
        by_category = ", ".join(f"{name} {count}" for name, count in sorted(report.needs_person_by_category.items()))
        ctx.say(f"{report.remaining_needs_person} failed event(s) need a person ({by_category}): no automatic "
                "retry will fix them; fix the cause, then `python -m jobs retry --event-id ID`")
    if report.next_retry_at:
        ctx.say(f"{report.remaining_planned} failed event(s) have a retry planned; next at "
                f"{report.next_retry_at:%Y-%m-%d %H:%M:%S} UTC")
