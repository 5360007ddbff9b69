"""Cleanup's third step: the monitor's own history kept for HISTORY_DAYS (90 days by default).

Job runs, alert notifications and sweep runs are written every minute by ``schedule`` and
``watch`` and would grow without end. Older than the retention, cleanup removes:

- ``alert_notifications`` that were sent or given up (their alerts stay);
- ``sweep_runs`` no missed event points to (those that found something stay);
- ``job_runs`` other than each job's last run and last success, and other than those a
  kept sweep run points to.

Sweep runs go before job runs, so a job run freed by a removed sweep run goes in the same
cleanup. A dry run counts what would go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from core.sql import load_package

SQL = load_package("jobs.cleanup", "history.sql")
DEFAULT_HISTORY_DAYS = 90
MIN_HISTORY_DAYS = 7
STEPS = (("alert_notifications", "prune_alert_notifications"), ("sweep_runs", "prune_sweep_runs"),
         ("job_runs", "prune_job_runs"))


@dataclass
class Pruned:
    alert_notifications: int = 0
    sweep_runs: int = 0
    job_runs: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"alert_notifications": self.alert_notifications, "sweep_runs": self.sweep_runs,
                "job_runs": self.job_runs}


def prune(engine: Engine, *, now: datetime, days: int = DEFAULT_HISTORY_DAYS, dry_run: bool = False) -> Pruned:
    """Remove (or count, ``dry_run``) the history older than ``days`` before ``now``."""
    before = now - timedelta(days=days)
    pruned = Pruned()
    for table, query in STEPS:
        with engine.begin() as conn:
            row = SQL.one(conn, query, before=before, dry_run=dry_run)
        setattr(pruned, table, int(row["matched"] if dry_run else row["removed"]))
    return pruned
