"""The Health page's schedule table: each scheduled job's last and next run, and whether it
is overdue (no Streamlit here: unit-tested). "Overdue" is the ``job_failed`` alert rule's
"missed": a fire time passed more than MONITOR_ALERT_JOB_GRACE_MINUTES ago and no run of the
job started since."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

import pandas as pd

from jobs.schedule.timetable import missed_fire_time

COLUMNS = ["job", "schedule", "last_run_at", "last_status", "next_run_at", "state"]


def recorded_job(entry_job: str) -> str:
    """The job_runs name of a schedule entry (``sweep-daily`` runs the sweep job)."""
    return entry_job.removesuffix("-daily")


def schedule_table(entries: Iterable, last_runs: Mapping[str, Mapping[str, Any]], now: datetime, *,
                   grace: timedelta) -> pd.DataFrame:
    """One row per schedule entry; ``last_runs`` maps a job to its job_summary row."""
    rows = []
    for entry in entries:
        last = last_runs.get(recorded_job(entry.job)) or {}
        last_run_at = last.get("last_run_at")
        last_run_at = None if last_run_at is None or pd.isna(last_run_at) else pd.Timestamp(last_run_at).to_pydatetime()
        fire_time = missed_fire_time(entry, last_run_at, now, grace=grace)
        overdue = fire_time is not None
        state = (f"overdue: due {fire_time:%Y-%m-%d %H:%M} UTC, has not run (is `schedule` running?)"
                 if overdue else "on time")
        rows.append({"job": entry.job, "schedule": entry.expression, "last_run_at": last_run_at,
                     "last_status": last.get("last_status") or "never ran",
                     "next_run_at": entry.trigger.get_next_fire_time(None, now), "state": state})
    return pd.DataFrame(rows, columns=COLUMNS)
