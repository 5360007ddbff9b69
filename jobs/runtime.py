"""What every job shares: an advisory lock so two runs never overlap (on one machine or
many), and a row in ``job_runs`` for each run, whatever its outcome."""

from __future__ import annotations

import json
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import JobBusy, MonitorError

# First half of the two-int advisory lock key, so our locks never collide with the app's.
LOCK_NAMESPACE = 0x5748  # "WH"


def error_line(exc: BaseException) -> str:
    """One readable line for a failure: a MonitorError's own message (written for a person),
    else the error's type and the first line of its text."""
    if isinstance(exc, MonitorError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


@dataclass
class JobRun:
    """Handle a running job writes its summary into; recorded when the run ends."""

    id: int
    job: str
    started_at: datetime
    summary: dict = field(default_factory=dict)
    status: str = "completed"  # a job may set "needs_review"
    # Durations come from the monotonic clock, not from ``now``: a job may be handed any
    # ``now`` (tests, backfills), and wall-clock minus ``now`` would be meaningless then.
    _started_monotonic: float = field(default_factory=time.monotonic, repr=False)

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started_monotonic) * 1000)


@contextmanager
def job_lock(engine: Engine, job: str) -> Iterator[Connection]:
    """Hold the job's session-level advisory lock for the block, or raise JobBusy at once.

    The lock lives on its own connection, so the job's transactions commit freely and a
    crashed process releases the lock with its connection.
    """
    conn = engine.connect()
    try:
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:ns, hashtext(:job))"),
            {"ns": LOCK_NAMESPACE, "job": job},
        ).scalar()
        conn.commit()
        if not got:
            raise JobBusy(f"another {job} run is in progress; nothing was done")
        try:
            yield conn
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, hashtext(:job))"),
                         {"ns": LOCK_NAMESPACE, "job": job})
            conn.commit()
    finally:
        conn.close()


def job_is_running(conn: Connection, job: str) -> bool:
    """True while some process holds the job's lock (works from a read-only connection)."""
    return bool(conn.execute(
        sa.text("""
            SELECT EXISTS (
                SELECT 1 FROM pg_locks
                WHERE locktype = 'advisory' AND granted
                  AND classid = :ns AND objid = hashtext(:job)::oid)
        """),
        {"ns": LOCK_NAMESPACE, "job": job},
    ).scalar())


@contextmanager
def recorded_run(engine: Engine, job: str, *, now: datetime, trigger: str = "cli",
                 lock: bool = True) -> Iterator[JobRun]:
    """Run a job under its lock and record it in job_runs.

    A run that finds the lock taken is recorded as 'skipped' and raises JobBusy; an
    exception marks it 'failed' with the error and propagates.
    """
    started = now
    with engine.begin() as conn:
        run_id = conn.execute(
            sa.text("""INSERT INTO job_runs (job, status, trigger, started_at, host)
                       VALUES (:job, 'running', :trigger, :started, :host) RETURNING id"""),
            {"job": job, "trigger": trigger, "started": started, "host": socket.gethostname()},
        ).scalar_one()
    run = JobRun(id=run_id, job=job, started_at=started)
    try:
        if lock:
            with job_lock(engine, job):
                yield run
        else:
            yield run
    except JobBusy as exc:
        _finish(engine, run, "skipped", error=str(exc))
        raise
    except BaseException as exc:
        _finish(engine, run, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    else:
        _finish(engine, run, run.status)


def _finish(engine: Engine, run: JobRun, status: str, *, error: str | None = None) -> None:
    duration_ms = run.elapsed_ms()
    with engine.begin() as conn:
        conn.execute(
            sa.text("""UPDATE job_runs
                       SET status = :status, finished_at = :finished, error = :error,
                           duration_ms = :duration_ms, summary = CAST(:summary AS jsonb)
                       WHERE id = :id"""),
            {"status": status, "finished": run.started_at + timedelta(milliseconds=duration_ms),
             "duration_ms": duration_ms, "error": error, "id": run.id,
             "summary": json.dumps(run.summary, default=str)},
        )
