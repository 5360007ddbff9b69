"""A job of ``python -m jobs`` that a page starts in the background and follows until it ends.

One ``BackgroundJob`` per action (Run cleanup, Run now, Retry now, Sweep now). It starts the
job through the dashboard's writes (``dashboard.writes``) and keeps the run in this browser
session, so the page finds it again after navigating away; collects the outcome once the
process has exited; tells whether some other process (the scheduler, cron, a terminal,
another browser) holds the job's lock; and follows a running job with a fragment that
redraws the whole page when it ends. What to say about a run and its outcome is the page's.

A database that cannot be reached while checking the lock is shown as the one-line message
every page shows for it (``dashboard.data.show_problem``), never as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import sqlalchemy as sa
import streamlit as st

from core.errors import ConfigError
from dashboard import data, writes
from jobs.runtime import job_is_running

PROGRESS_EVERY_S = 1.0


def _outcome(run: writes.BackgroundRun) -> Any:
    return run.outcome()


@dataclass(frozen=True)
class BackgroundJob:
    """``python -m jobs <command>`` started from a page.

    ``slot`` and ``result_key`` name this session's run and its last outcome in
    ``st.session_state``; ``lock`` is the job's lock name (``jobs.runtime``) when a run
    started elsewhere is to be followed too (None: only this session's own runs);
    ``summarize`` turns a finished run into what the page keeps to show (its ``Outcome`` by
    default).
    """

    command: str
    slot: str
    result_key: str
    lock: str | None = None
    summarize: Callable[[writes.BackgroundRun], Any] = _outcome

    def run(self) -> writes.BackgroundRun | None:
        """The run this browser session started, until its outcome is collected."""
        return writes.remembered(self.slot)

    def running(self) -> bool:
        """Uncached: does some process (this session's run included) hold the job's lock?"""
        if self.lock is None:
            return False
        try:
            with data.get_engine().connect() as conn:
                return job_is_running(conn, self.lock)
        except sa.exc.DBAPIError as exc:
            data.show_problem(data.DatabaseProblem(data.describe_database_error(data.database_url(), exc)))
        except data.DatabaseProblem as exc:
            data.show_problem(exc)
        return False  # not reached: show_problem stops the page

    def busy(self) -> bool:
        """A run of this session, or one started elsewhere, is still going."""
        return self.run() is not None or self.running()

    def collect_finished(self) -> None:
        """Keep the outcome of this session's run once it ended and drop cached results; call it
        before any section of the page reads them."""
        run = self.run()
        if run is not None and run.finished:
            st.session_state[self.result_key] = self.summarize(run)
            writes.forget(self.slot)
            data.refresh()

    def result(self) -> Any:
        """What was kept of the last run (or of the last refusal to start), or None."""
        return st.session_state.get(self.result_key)

    def start(self, *args: Any) -> ConfigError:
        """Start ``python -m jobs <command> <args>`` and redraw the page to follow it.

        Returns only when nothing was started: the reason (this dashboard may not write, or
        the session is no longer logged in), for the page to show.
        """
        st.session_state.pop(self.result_key, None)
        try:
            writes.remember(self.slot, writes.start(self.command, *args, actor=writes.actor()))
        except ConfigError as exc:
            return exc
        st.rerun()

    def show(self, progress: Callable[[writes.BackgroundRun | None], None],
             outcome: Callable[[Any], None]) -> bool:
        """The job's place on a page: while a run goes on, ``progress`` followed (``follow``)
        and True, for the page to offer no action; else the last result through ``outcome``,
        when there is one, and False."""
        if self.busy():
            self.follow(progress)
            return True
        if self.result() is not None:
            outcome(self.result())
        return False

    def follow(self, show: Callable[[writes.BackgroundRun | None], None]) -> None:
        """Draw the running job with ``show(run)`` once a second (``run`` is None for a run
        started elsewhere); once it has ended, redraw the page with fresh results."""
        _follow(self, show)


@st.fragment(run_every=PROGRESS_EVERY_S)
def _follow(job: BackgroundJob, show: Callable[[writes.BackgroundRun | None], None]) -> None:
    run = job.run()
    if (run is not None and run.finished) or (run is None and not job.running()):
        data.refresh()  # a run started elsewhere has new results too
        st.rerun()  # ended: the whole page again, with the outcome
    show(run)
