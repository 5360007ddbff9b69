"""Cleanup step 1: old completed webhook events move to ``webhook_events_archive``.

Batches of a few thousand rows, each one short statement (``FOR UPDATE SKIP LOCKED``) in a
transaction with a lock and statement time limit, so the webhook handler's inserts never
wait long. Failed, pending and processing events are never moved.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from core.sql import load_package
from jobs.cleanup.run import CleanupRun

SQL = load_package("jobs.cleanup", "events.sql")

# Small enough that a batch commits in a fraction of a second (its WAL flush is what a
# concurrent handler insert may wait behind), large enough to keep the per-statement cost low.
DEFAULT_BATCH_SIZE = 2000
OLDEST = datetime(1, 1, 1, tzinfo=timezone.utc)


def archive_events(run: CleanupRun) -> None:
    """Count the old events, then (unless a dry run) move the completed ones batch by batch."""
    r = run.report
    with run.engine.connect() as conn:
        counts = SQL.execute(conn, "count_old_events", cutoff=r.events_cutoff).one()
    r.events_matched, r.events_kept_failed, r.events_kept_open = counts.completed, counts.failed, counts.open
    run.save()
    if r.dry_run or not r.events_matched:
        return
    started = time.monotonic()
    resume_from = OLDEST
    while True:
        with run.engine.begin() as conn:
            SQL.execute(conn, "batch_limits")
            moved, resume_from = SQL.execute(
                conn, "archive_event_batch", cutoff=r.events_cutoff, resume_from=resume_from,
                batch_size=run.batch_size, archived_at=run.now, run_id=r.run_id).one()
        if not moved:
            break
        r.events_archived += moved
        r.event_batches += 1
        r.events_per_second = round(r.events_archived / max(time.monotonic() - started, 1e-6), 1)
        run.save()
        run.progress(f"events: {r.event_batches} batches, {r.events_archived:,} of "
                     f"{r.events_matched:,} moved, {r.events_per_second:,.0f} rows/s")
