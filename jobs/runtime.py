"""What every job shares: an advisory lock so two runs never overlap (on one machine or
many), and a row in ``job_runs`` for each run, whatever its outcome.

Durations come from the monotonic clock, never from the wall clock minus the ``now`` a job
was given: a job may be handed any ``now`` (tests, backfills, a run "as of" last month), and
it still finishes ``completed`` with its real duration. A long job reports what it has done
so far with ``JobRun.report_progress(...)``; the dashboard shows it while the run lasts.

A run whose database goes away under it (a restart, a failover) still ends recorded: the
run's end is written again, with backoff, for up to FINISH_RETRY_S while the database is
unreachable, and the job's own error is what propagates, never the bookkeeping's.

Each run keeps one connection, its *session*, for its whole length: the job's advisory lock
lives on it, and so does the run's liveness lock (keyed by its ``job_runs`` id). So:

- a run whose session ended (PostgreSQL restarted, the connection cut) lost its lock, and
  another run may have started since: it stops with :class:`DatabaseLost` (exit 1, recorded
  failed with the reason) at its next progress report or at its end, never recorded a
  success; what it committed stays, and the next run does the rest. A job that is meant to
  ride restarts out (``watch``) says ``survives_restart=True``;
- a run killed outright (SIGKILL, OOM, its machine lost) leaves its row 'running', but its
  liveness lock is freed with its session: the next start of any job closes such rows as
  failed, with the reason "abandoned" (:func:`close_abandoned_runs`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

import sqlalchemy as sa
import tenacity
from sqlalchemy.engine import Connection, Engine

from core.errors import JobBusy, JobFailed, MonitorError
from core.sql import load_package

SQL = load_package("jobs", "runtime.sql")

# First half of the two-int advisory lock key, so our locks never collide with the app's.
LOCK_NAMESPACE = 0x5748  # "WH"
# First half of a run's liveness lock key (the second is its job_runs id).
RUN_NAMESPACE = 0x5752  # "WR"
# A job's progress is written at most this often (each write is a short transaction).
PROGRESS_EVERY_S = 0.5
# How long the end of a run is retried while the database cannot be reached, so that a run
# cut short by a database restart is recorded 'failed' with its reason, not left 'running'.
FINISH_RETRY_S = 30.0

log = logging.getLogger(__name__)


def error_line(exc: BaseException) -> str:
    """One readable line for a failure: a MonitorError's own message (written for a person),
    else the error's type and the first line of its text. A database error names the
    driver's error and its message only: SQLAlchemy's text adds the statement and its
    parameters (customers' e-mail addresses, amounts) and PostgreSQL's DETAIL line the
    failing row, and neither belongs in job_runs, alerts or mail."""
    if isinstance(exc, MonitorError):
        return _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return _class_and_message(exc)


def run_error(exc: BaseException) -> str:
    """What job_runs.error keeps of a failed run: the error's class and one line of message."""
    if isinstance(exc, MonitorError):
        return f"{type(exc).__name__}: {error_line(exc)}"[:2000]
    return error_line(exc)[:2000]


def _class_and_message(exc: BaseException) -> str:
    if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        exc = exc.orig  # the driver's error: its text has no [SQL: ...] or [parameters: ...]
    message = _one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _one_line(text: str) -> str:
    """The first non-empty line, its runs of whitespace made one space."""
    for line in text.strip().splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


class DatabaseLost(JobFailed):
    """The run's database session ended mid-run (a restart, a failover, a cut connection):
    its lock went with it, so the run stops rather than go on unprotected. Exit code 1."""


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
    engine: Engine | None = field(default=None, repr=False)
    _progress_at: float | None = field(default=None, repr=False)
    # The connection held for the whole run (its locks live on it); see check_session.
    session: Connection | None = field(default=None, repr=False)
    survives_restart: bool = field(default=False, repr=False)
    _lost: str | None = field(default=None, repr=False)

    def check_session(self) -> None:
        """Raise DatabaseLost if the run's session has ended since the run started (then its
        locks are gone too). One round trip; called with every progress report and at the
        run's end. A run with ``survives_restart`` (or without a session) is never stopped."""
        if self.session is None or self.survives_restart:
            return
        if self._lost is None:
            try:
                SQL.execute(self.session, "session_alive")
                self.session.commit()
            except sa.exc.DBAPIError as exc:
                self._lost = error_line(exc)
                with contextlib.suppress(Exception):
                    self.session.invalidate()  # closed for good; recorded_run lets it go
        if self._lost is not None:
            raise DatabaseLost(
                f"the run lost its database connection mid-run ({self._lost}; PostgreSQL restarted or the "
                "connection was cut), and its lock with it: it stopped there; what it committed is kept "
                "and the next run does the rest")

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started_monotonic) * 1000)

    def report_progress(self, *, force: bool = False, **progress) -> bool:
        """Record what the run has done so far (JSON-able values, e.g. ``done=1200,
        total=5000, message="batch 3"``) in job_runs.progress, for whoever follows the run.

        Written at most every PROGRESS_EVERY_S seconds unless ``force``; returns whether
        it was written. A run without an engine (not recorded) ignores it. Raises
        DatabaseLost when the run's session has ended (see check_session).
        """
        if self.engine is None:
            return False
        clock = time.monotonic()
        if not force and self._progress_at is not None and clock - self._progress_at < PROGRESS_EVERY_S:
            return False
        self._progress_at = clock
        self.check_session()
        with self.engine.begin() as conn:
            SQL.execute(conn, "report_progress", id=self.id, progress=json.dumps(progress, default=str))
        return True


@contextmanager
def job_lock(engine: Engine, job: str, *, conn: Connection | None = None) -> Iterator[Connection]:
    """Hold the job's session-level advisory lock for the block, or raise JobBusy at once.

    The lock lives on its own connection (``conn``, else a new one closed afterwards), so
    the job's transactions commit freely and a crashed process releases the lock with its
    connection.
    """
    own = conn is None
    conn = engine.connect() if own else conn
    try:
        got = SQL.execute(conn, "try_lock", ns=LOCK_NAMESPACE, job=job).scalar()
        conn.commit()
        if not got:
            raise JobBusy(f"another {job} run is in progress; nothing was done")
        try:
            yield conn
        finally:
            if not conn.invalidated:  # else the session, and its lock, are gone already
                try:
                    SQL.execute(conn, "unlock", ns=LOCK_NAMESPACE, job=job)
                    conn.commit()
                except (sa.exc.DBAPIError, sa.exc.InvalidRequestError):
                    # The session is gone (database restarted) and its lock with it; end it for
                    # sure, and let the job's own error, if any, be the one that propagates.
                    with contextlib.suppress(Exception):
                        conn.invalidate()
    finally:
        if own:
            conn.close()


def job_is_running(conn: Connection, job: str) -> bool:
    """True while some process holds the job's lock (works from a read-only connection)."""
    return bool(SQL.execute(conn, "job_is_running", ns=LOCK_NAMESPACE, job=job).scalar())


@contextmanager
def recorded_run(engine: Engine, job: str, *, now: datetime, trigger: str = "cli",
                 lock: bool = True, survives_restart: bool = False) -> Iterator[JobRun]:
    """Run a job under its lock and record it in job_runs.

    A run that finds the lock taken is recorded as 'skipped' and raises JobBusy; an
    exception marks it 'failed' with the error and propagates. A run whose session ended
    on the way (see the module's docstring) is recorded failed with DatabaseLost, unless
    ``survives_restart``. Starting a run also closes the rows of runs that were killed.
    """
    session = engine.connect()
    try:
        run_id = SQL.execute(session, "start_run", job=job, trigger=trigger, started=now,
                             host=socket.gethostname(), pid=os.getpid()).scalar_one()
        SQL.execute(session, "hold_run", ns=RUN_NAMESPACE, id=run_id)
        session.commit()
    except BaseException:
        _drop(session)
        raise
    run = JobRun(id=run_id, job=job, started_at=now, engine=engine, session=session,
                 survives_restart=survives_restart)
    try:
        close_abandoned_runs(engine, now=now, own=run_id, closer=job)
        try:
            if lock:
                with job_lock(engine, job, conn=session):
                    yield run
                    run.check_session()  # still under the lock: else the run did not hold it throughout
            else:
                yield run
                run.check_session()
        except JobBusy as exc:
            _finish(engine, run, "skipped", error=error_line(exc))
            raise
        except BaseException as exc:
            try:
                _finish(engine, run, "failed", error=run_error(exc))
            except Exception as record_exc:  # the job's error matters more than the bookkeeping's
                log.error("run %s of %s failed and could not be recorded as failed: %s",
                          run.id, job, error_line(record_exc))
            raise
        else:
            _finish(engine, run, run.status)
    finally:
        _drop(session)  # after the end is recorded: the row is never 'running' without its lock


def _drop(session: Connection) -> None:
    """End the session for good (its locks with it), whether or not it is still alive: the
    connection is closed, not handed back to the pool with session locks on it."""
    with contextlib.suppress(Exception):  # already gone
        session.invalidate()
    with contextlib.suppress(Exception):
        session.close()


def close_abandoned_runs(engine: Engine, *, now: datetime, own: int, closer: str) -> list[dict]:
    """Record failed ('abandoned: ...') the 'running' rows whose process is gone: their
    liveness lock is free and was taken on this server start, or (a row older than the
    server's last start, whose lock the restart freed) their host is this one and their pid
    is not alive here. Returns the rows closed. Never raises: the starting job matters more."""
    try:
        candidates = SQL.all(engine, "unheld_running_runs", ns=RUN_NAMESPACE, own=own)
        host = socket.gethostname()
        gone = [row["id"] for row in candidates
                if row["same_server_start"] or (row["host"] == host and row["pid"] and not _pid_alive(row["pid"]))]
        if not gone:
            return []
        with engine.begin() as conn:
            closed = SQL.all(conn, "close_abandoned_runs", ns=RUN_NAMESPACE, ids=gone, now=now, own=own,
                             closer=closer)
        for row in closed:
            log.warning("run %s of %s was abandoned (its process is gone): recorded failed", row["id"], row["job"])
        return closed
    except Exception as exc:
        log.warning("could not look for abandoned runs: %s", error_line(exc))
        return []


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _database_unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (worth waiting for), not an error in the statement."""
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated)


# For a short write that must not be lost to a database restart (a run's end, releasing
# what a run claimed): tried again with backoff for up to FINISH_RETRY_S while the database
# cannot be reached; any other error, or the database still gone after that, is raised.
while_database_unreachable = tenacity.retry(
    retry=tenacity.retry_if_exception(_database_unreachable),
    stop=tenacity.stop_after_delay(FINISH_RETRY_S),
    wait=tenacity.wait_exponential(multiplier=0.25, max=4), reraise=True)


@while_database_unreachable
def _finish(engine: Engine, run: JobRun, status: str, *, error: str | None = None) -> None:
    duration_ms = run.elapsed_ms()
    with engine.begin() as conn:
        SQL.execute(conn, "finish_run", status=status, error=error, id=run.id, duration_ms=duration_ms,
                    finished=run.started_at + timedelta(milliseconds=duration_ms),
                    summary=json.dumps(run.summary, default=str))
