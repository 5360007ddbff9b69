"""A job process killed outright (SIGKILL: nothing runs its shutdown) beside a live one: what
becomes of its job_runs row."""

from __future__ import annotations

import time

from core.sql import load_package
from devharness.scenarios.steps import (
    ScenarioResult,
    run_line,
    run_to_end,
    scratch_engine,
    wait_for_watchers,
    watch_processes,
)

SQL = load_package("devharness.scenarios", "steps.sql", "job_crash.sql")


def job_killed_mid_run(database_url: str, *, next_job: tuple[str, ...] = ("health-snapshot",)) -> ScenarioResult:
    """Two ``python -m jobs watch`` processes run; one is SIGKILLed (nothing runs its
    shutdown, its job_runs row stays 'running'). The next start of a job (``next_job``) must
    close the killed run's row as failed with the reason "abandoned", and leave the live
    watch's row 'running'; stopped, the live one is recorded completed."""
    from devharness.http_sink import HttpSink

    engine = scratch_engine(database_url)
    with HttpSink() as sink:
        processes = watch_processes(database_url, 2, extra_env={"MONITOR_ALERT_WEBHOOK_URL": sink.url,
                                                                "MONITOR_ALERT_INTERVAL_S": "5"})
        try:
            wait_for_watchers(engine, processes)
            victim, survivor = processes
            victim_pid, survivor_pid = victim.pid, survivor.pid
            victim.popen.kill()  # SIGKILL
            victim.popen.wait(10)
            killed = time.monotonic()
            running_after_kill = SQL.scalar(engine, "running_job_runs")
            next_exit, next_log = run_to_end(database_url, *next_job, env={})
            recover_s = time.monotonic() - killed
            victim_row = SQL.one(engine, "job_run_by_pid", job="watch", pid=victim_pid)
            survivor_row = SQL.one(engine, "job_run_by_pid", job="watch", pid=survivor_pid)
            survivor_alive = survivor.popen.poll() is None
        finally:
            exits = [process.stop() for process in processes]
            for process in processes:
                process.close()
    survivor_final = SQL.one(engine, "job_run_by_pid", job="watch", pid=survivor_pid)
    engine.dispose()
    closed = victim_row["status"] == "failed" and (victim_row["error"] or "").startswith("abandoned")
    kept = survivor_row["status"] == "running"
    return ScenarioResult(
        f"a watch process SIGKILLed beside a live one; then {' '.join(next_job)} starts",
        before=2, after=int(closed) + int(kept), lost=0 if kept else 1, duplicated=0,
        stuck=0 if closed else 1, recover_s=recover_s if closed else None,
        detail={"running_after_kill": running_after_kill, "next_exit": next_exit,
                "killed_run": run_line(victim_row, 140),
                "live_run": survivor_row["status"], "live_alive": survivor_alive,
                "live_run_after_stop": survivor_final["status"], "watch_exits": exits,
                "log": "" if closed and kept else next_log})
