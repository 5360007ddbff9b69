import os
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from core.errors import JobBusy, JobFailed
from jobs.runtime import error_line, job_is_running, job_lock, recorded_run

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)


def job_rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT job, status, trigger, error, summary FROM job_runs ORDER BY id")).all()


def test_completed_run_is_recorded_with_its_summary(db):
    with recorded_run(db, "example", now=NOW, trigger="schedule") as run:
        run.summary["moved"] = 3
    [(job, status, trigger, error, summary)] = job_rows(db)
    assert (job, status, trigger, error, summary) == ("example", "completed", "schedule", None, {"moved": 3})


def test_second_run_while_first_holds_the_lock_is_skipped(db, dashboard_engine):
    with recorded_run(db, "example", now=NOW):
        with dashboard_engine.connect() as conn:
            assert job_is_running(conn, "example")
            assert not job_is_running(conn, "other")
        with pytest.raises(JobBusy, match="another example run is in progress"):
            with recorded_run(db, "example", now=NOW):
                pytest.fail("the second run must not start")
    statuses = [row.status for row in job_rows(db)]
    assert statuses == ["completed", "skipped"]
    with dashboard_engine.connect() as conn:
        assert not job_is_running(conn, "example")


def test_failing_run_is_recorded_as_failed_and_releases_the_lock(db):
    with pytest.raises(RuntimeError):
        with recorded_run(db, "example", now=NOW):
            raise RuntimeError("stripe went away")
    [row] = job_rows(db)
    assert row.status == "failed" and "stripe went away" in row.error
    with job_lock(db, "example"):  # free again
        pass


def test_duration_is_measured_even_when_now_is_long_ago(db):
    long_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with recorded_run(db, "example", now=long_ago):
        pass
    with db.connect() as conn:
        duration, started, finished = conn.execute(
            sa.text("SELECT duration_ms, started_at, finished_at FROM job_runs")).one()
    assert 0 <= duration < 5000
    assert started == long_ago and finished >= started


def test_error_line_is_one_readable_line():
    assert error_line(JobFailed("Stripe answered 500 to list Checkout Sessions")) == \
        "Stripe answered 500 to list Checkout Sessions"
    assert error_line(ValueError("bad value\nTraceback detail")) == "ValueError: bad value"
    assert error_line(RuntimeError()) == "RuntimeError"
    assert error_line(KeyboardInterrupt()) == "interrupted"


def test_progress_is_recorded_at_most_every_half_second_unless_forced(db):
    with recorded_run(db, "example", now=NOW) as run:
        assert run.report_progress(done=1, total=3)
        assert not run.report_progress(done=2, total=3)  # too soon: skipped
        with db.connect() as conn:
            assert conn.execute(sa.text("SELECT progress FROM job_runs")).scalar() == {"done": 1, "total": 3}
        assert run.report_progress(force=True, done=3, total=3, message="last batch")
    with db.connect() as conn:
        row = conn.execute(sa.text("SELECT status, progress, pid, host FROM job_runs")).mappings().one()
    assert row["status"] == "completed" and row["progress"] == {"done": 3, "total": 3, "message": "last batch"}
    assert row["pid"] == os.getpid() and row["host"]


def _running_row(engine, *, host, pid, same_server_start):
    with engine.begin() as conn:
        return conn.execute(sa.text("""
            INSERT INTO job_runs (job, status, trigger, started_at, host, pid, server_started_at)
            VALUES ('cleanup', 'running', 'cli', now() - interval '1 hour', :host, :pid,
                    CASE WHEN :same THEN pg_postmaster_start_time() ELSE pg_postmaster_start_time() - interval '1 day' END)
            RETURNING id"""), {"host": host, "pid": pid, "same": same_server_start}).scalar_one()


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_start_closes_the_rows_of_runs_whose_process_is_gone_and_leaves_live_ones(db):
    import socket

    here = socket.gethostname()
    dead = _running_row(db, host="elsewhere", pid=4242, same_server_start=True)  # its lock is free: gone
    dead_here = _running_row(db, host=here, pid=_dead_pid(), same_server_start=False)  # before a restart
    maybe_alive = _running_row(db, host="elsewhere", pid=4242, same_server_start=False)  # cannot tell: kept
    with recorded_run(db, "example", now=NOW):
        with recorded_run(db, "other", now=NOW, lock=False):  # a live run is never taken for dead
            pass
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text("SELECT id, job, status, error FROM job_runs"))}
    assert rows[dead].status == rows[dead_here].status == "failed"
    assert rows[dead].error.startswith("abandoned: its process (pid 4242 on elsewhere) ended without recording")
    assert rows[maybe_alive].status == "running"
    assert sorted(r.status for r in rows.values() if r.job in ("example", "other")) == ["completed", "completed"]


def test_a_run_whose_session_is_cut_stops_at_its_next_progress_report_and_is_recorded_failed(db):
    from jobs.runtime import DatabaseLost

    with pytest.raises(DatabaseLost, match="lost its database connection mid-run"):
        with recorded_run(db, "example", now=NOW) as run:
            backend = run.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            run.session.commit()
            with db.connect() as conn:  # the connection cut, as a restart or a failover does
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            run.report_progress(done=1)
            pytest.fail("the run must stop: it no longer holds its lock")
    [row] = job_rows(db)
    assert row.status == "failed" and row.error.startswith("DatabaseLost: the run lost its database connection")
    with job_lock(db, "example"):  # free
        pass


def test_a_run_whose_session_is_cut_after_its_last_report_is_not_recorded_a_success(db):
    from jobs.runtime import DatabaseLost

    with pytest.raises(DatabaseLost):
        with recorded_run(db, "example", now=NOW) as run:
            backend = run.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            run.session.commit()
            with db.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    [row] = job_rows(db)
    assert row.status == "failed"
