"""The dashboard's one way to write.

Every page reads through ``dashboard.data`` (a read-only engine). Every write goes through
this module, which holds the single read-write engine (``DATABASE_URL``, cached once per
process) and the single answer to "can this dashboard write?". Short writes run here, in one
transaction; long jobs (cleanup, reconciliation, and any job of ``python -m jobs``) run in
the background as their own process, exactly as from a terminal, and the page follows them.

API, for every page that writes (Run cleanup, Run now, Resolve, acknowledging and
silencing alerts use it today)::

    from dashboard import writes

    problem = writes.problem()    # None, or why this dashboard cannot write: show it and
                                  # disable the button (every write also refuses by itself)
    who = writes.actor()          # the logged-in identity every write records

    # One named statement (a core.sql block that names :actor, who did it), one transaction:
    rows = writes.write(SQL, "close_thing", actor=who, thing_id=7)

    # A domain function that owns its checks and statements, run with this module's engine
    # (it gets the engine as its first argument):
    writes.call(review.resolve_item, item_id, note=note, by=name, now=now)

    # A long job in the background: `python -m jobs <command> <args> --json --trigger dashboard`
    run = writes.start("cleanup", "--dry-run", actor=who)
    writes.remember(SLOT, run)        # keep it in this browser session: survives navigation
    run = writes.remembered(SLOT)     # the same handle on a later script run (or None)
    run.finished                      # has the process exited?
    run.record()                      # its job_runs row: status, progress (JSON the job
                                      # writes with JobRun.report_progress), None until the
                                      # job has recorded its start
    outcome = run.outcome()           # once finished: Outcome(state, exit_code, record,
                                      # report, reason)

``Outcome.state`` comes from the exit code (declared once in ``core.errors``) and the run
record, never from message text: ``done`` (exit 0), ``needs_person`` (3), ``refused`` (2:
bad usage or configuration, nothing done), ``busy`` (1 and the record says ``skipped``:
another run held the job's lock) and ``failed`` (1, or the process died). ``report`` is the
command's ``--json`` report (None when it failed); ``reason`` the one line saying why it
failed (the ``error`` of the CLI's JSON error object, else its last line on stderr), only
ever shown as text (``dashboard.components.text.markdown_literal``).

Inside a browser session every write (``engine()``, so ``write``, ``call`` and ``start``)
checks again that the session is still logged in and, with login off, still a local request
(``dashboard.auth.write_refusal``); a refusal is ``WriteRefused``, a ``ConfigError``.

A run's handle lives in a registry of this process keyed by ``run.key``; the session keeps
only the key, so a page visited again (or another page) finds the same run, and a job keeps
running when the browser navigates away or closes. The job holds its advisory lock, so a run
started elsewhere (cron, the scheduler, another browser) never overlaps it. Pages start and
follow jobs with ``dashboard.components.background_job.BackgroundJob``, which also tells a
run started elsewhere by the job's lock.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Callable, TypeVar

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine

from core.db import create_jobs_engine, jobs_url
from core.errors import EXIT_FAILED, EXIT_NEEDS_PERSON, EXIT_OK, EXIT_USAGE, ConfigError, MonitorError
from core.settings import Settings, get_settings
from core.sql import Statements, load_package
from dashboard import auth

SQL = load_package("dashboard", "writes.sql")
TRIGGER = "dashboard"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Handles kept per process; the oldest finished ones are dropped beyond this many.
KEEP_RUNS = 50
# A job records its start a moment after its process starts; a job_runs row of the same
# host and pid older than the start minus this is an old process's.
CLOCK_SLACK = timedelta(seconds=60)
WATCH_EVERY_S = 0.25
_CLI_PREFIX = re.compile(r"^(error|failed|skipped): ")

T = TypeVar("T")


class WriteRefused(ConfigError):
    """This dashboard may not write (``problem()`` says why); nothing was done."""


class WriteFailed(MonitorError):
    """The database refused or failed a write; nothing was changed (one readable line)."""


# --- can this dashboard write? ----------------------------------------------------------

def problem(settings: Settings | None = None) -> str | None:
    """Why this dashboard process cannot write, or None."""
    try:
        settings = settings or get_settings()
    except ConfigError as exc:
        return str(exc)
    if settings.DASHBOARD_DATABASE_URL and not settings.DATABASE_URL:
        # The jobs engine would fall back to the embedded database: the wrong one.
        return ("Writing from the dashboard (running jobs, resolving items) needs DATABASE_URL (a read-write "
                "URL) in its environment; only DASHBOARD_DATABASE_URL is set. The same works from a terminal "
                "with `python -m jobs`.")
    return None


@st.cache_resource(show_spinner=False, max_entries=2)
def _engine_for(url: str) -> Engine:
    return create_jobs_engine(get_settings(DATABASE_URL=url))


def engine() -> Engine:
    """The dashboard's one read-write engine (DATABASE_URL); WriteRefused when it may not write."""
    reason = problem()
    if reason:
        raise WriteRefused(reason)
    _session_refusal()
    return _engine_for(jobs_url(get_settings()))


def actor() -> str:
    """Who is using the dashboard: the identity the login recorded (a verified OIDC address,
    ``password login``, or ``local user (login off)``); '' when nobody is logged in, which
    every write refuses."""
    return auth.current_identity() or ""


def _session_refusal() -> None:
    """Inside a browser session, check again at the moment of the write that it is still
    logged in and, with login off, still a local request (dashboard.auth.write_refusal)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        return  # not a browser session: a test or a script writing directly
    refusal = auth.write_refusal(get_settings())
    if refusal:
        raise WriteRefused(refusal)


def _failure(exc: sa.exc.SQLAlchemyError) -> WriteFailed:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return WriteFailed(f"the database did not accept the change: {lines[0] if lines else type(exc).__name__}")


# --- short writes ---------------------------------------------------------------------------

def write(statements: Statements, name: str, /, *, actor: str, **params: Any) -> list[dict[str, Any]]:
    """Run one named statement in one transaction on the read-write engine.

    The statement binds ``:actor`` (who did it) besides ``params``; core.sql checks they are
    exactly its parameters. Returns the rows it returns (RETURNING), [] for none. Raises
    WriteRefused (this dashboard may not write, or no actor) or WriteFailed (the database
    said no; the transaction was rolled back).
    """
    who = (actor or "").strip()
    if not who:
        raise WriteRefused("a change from the dashboard needs the name of who made it")
    bind = engine()
    try:
        with bind.begin() as conn:
            result = statements.execute(conn, name, actor=who, **params)
            return [dict(row) for row in result.mappings()] if result.returns_rows else []
    except sa.exc.SQLAlchemyError as exc:
        raise _failure(exc) from exc


def call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(engine, *args, **kwargs)`` with the read-write engine, for a domain function
    that owns its checks and its statements (its own errors pass through unchanged)."""
    bind = engine()
    try:
        return function(bind, *args, **kwargs)
    except sa.exc.SQLAlchemyError as exc:
        raise _failure(exc) from exc


# --- long jobs in the background ------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """How a background run ended (see the module docstring for ``state``)."""

    state: str
    exit_code: int
    record: dict[str, Any] | None
    report: dict[str, Any] | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.state in ("done", "needs_person")


def outcome_state(exit_code: int, record: dict[str, Any] | None) -> str:
    """The outcome's state from the exit code and the run record (never from text)."""
    if exit_code == EXIT_OK:
        return "done"
    if exit_code == EXIT_NEEDS_PERSON:
        return "needs_person"
    if exit_code == EXIT_USAGE:
        return "refused"
    if exit_code == EXIT_FAILED and record is not None and record.get("status") == "skipped":
        return "busy"
    return "failed"


@dataclass(eq=False)
class BackgroundRun:
    """``python -m jobs <command> ... --json --trigger dashboard`` running as a child process.

    Its own process and connection do the work; this handle only polls it and reads its
    run record. Use ``start()`` to make one.
    """

    key: str
    command: str
    args: tuple[str, ...]
    actor: str
    started_at: datetime
    process: subprocess.Popen
    _stdout: IO[str] = field(repr=False)
    _stderr: IO[str] = field(repr=False)
    host: str = field(default_factory=socket.gethostname)
    _record_id: int | None = field(default=None, repr=False)
    _outcome: Outcome | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exit_code(self) -> int | None:
        """The exit code once the process has exited, else None."""
        return self.process.poll()

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def record(self) -> dict[str, Any] | None:
        """The run's job_runs row (status, progress, summary, error), or None until the job
        has recorded its start (or when it stopped before: bad usage, no database)."""
        bind = engine()
        with bind.connect() as conn:
            row = SQL.one(conn, "job_run_of_process", host=self.host, pid=self.pid, job=self.command,
                          since=self.started_at - CLOCK_SLACK)
        if row is not None and self._record_id is None:
            with bind.begin() as conn:  # who started it, recorded once the row exists
                SQL.execute(conn, "claim_job_run", id=row["id"], actor=self.actor)
            self._record_id = row["id"]
            row["started_by"] = row["started_by"] or self.actor
        return row

    def outcome(self) -> Outcome | None:
        """How the run ended, once it has (None while it runs); read once, then kept."""
        with self._lock:
            if self._outcome is None and self.finished:
                self._outcome = self._collect()
            return self._outcome

    def _watch(self) -> None:
        """In a thread of its own: record who started the run as soon as its row exists, and
        collect the outcome when the process ends (which also reaps it), so both happen even
        when nobody has the page open."""
        while not self.finished and self._record_id is None:
            try:
                self.record()
            except Exception:  # the page shows database problems; this thread only retries
                pass
            time.sleep(WATCH_EVERY_S)
        self.process.wait()
        self.outcome()

    def _collect(self) -> Outcome:
        code = int(self.process.returncode)
        try:
            record = self.record()
        except (sa.exc.SQLAlchemyError, ConfigError):
            record = None
        report = _json_report(_read(self._stdout))
        reason = ""
        if report is not None and set(report) == {"error", "outcome", "exit_code"}:
            # Under --json the command line reports a failure as this object, not a report.
            reason, report = str(report["error"]), None
        if not reason:
            lines = [line.strip() for line in _read(self._stderr).splitlines() if line.strip()]
            reason = _CLI_PREFIX.sub("", lines[-1]) if lines else ""
        if not reason and code < 0:
            reason = f"the job's process was stopped (signal {-code})"
        for stream in (self._stdout, self._stderr):
            stream.close()
        return Outcome(outcome_state(code, record), code, record, report, reason)


def _read(stream: IO[str]) -> str:
    stream.seek(0)
    return stream.read()


def _json_report(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


_RUNS: dict[str, BackgroundRun] = {}
_RUNS_LOCK = threading.Lock()


def start(command: str, *args: str, actor: str) -> BackgroundRun:
    """Start ``python -m jobs <command> <args> --json --trigger dashboard`` in the background
    with this process's environment; WriteRefused when this dashboard may not write."""
    engine()  # refuse before starting anything
    who = (actor or "").strip() or "dashboard"
    argv = [sys.executable, "-m", "jobs", command, *map(str, args), "--json", "--trigger", TRIGGER]
    stdout = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    started = datetime.now(timezone.utc)
    # Its own session: a job keeps running (and finishes cleanly) when the dashboard stops.
    process = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                               env=os.environ.copy(), start_new_session=True)
    run = BackgroundRun(uuid.uuid4().hex, command, tuple(map(str, args)), who, started, process, stdout, stderr)
    threading.Thread(target=run._watch, name=f"watch {command} {process.pid}", daemon=True).start()
    with _RUNS_LOCK:
        _RUNS[run.key] = run
        finished = [key for key, r in _RUNS.items() if r.finished]
        for key in finished[: max(0, len(_RUNS) - KEEP_RUNS)]:
            del _RUNS[key]
    return run


def get(key: str | None) -> BackgroundRun | None:
    """The run started by this dashboard process under ``key``, if it is still known."""
    with _RUNS_LOCK:
        return _RUNS.get(key) if key else None


def running(command: str | None = None) -> list[BackgroundRun]:
    """Runs this dashboard process started that have not exited (of ``command``, or all)."""
    with _RUNS_LOCK:
        runs = list(_RUNS.values())
    return [run for run in runs if not run.finished and command in (None, run.command)]


def remember(slot: str, run: BackgroundRun) -> None:
    """Keep ``run`` in this browser session under ``slot`` (a page's own name for it)."""
    st.session_state[slot] = run.key


def remembered(slot: str) -> BackgroundRun | None:
    """The run kept under ``slot`` in this browser session, or None."""
    return get(st.session_state.get(slot))


def forget(slot: str) -> None:
    st.session_state.pop(slot, None)


