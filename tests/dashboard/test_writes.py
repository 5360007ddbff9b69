"""The dashboard's writes (dashboard/writes.py): the one read-write engine, the can-it-write
check, named writes in one transaction, and jobs run in the background as `python -m jobs` processes whose
outcome comes from the exit code and the run record."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.sql import SqlParameterError, Statements, parse
from dashboard import writes
from jobs.runtime import job_lock
from tests.support.factories import add_event


def finished(run: writes.BackgroundRun, timeout_s: float = 60) -> writes.Outcome:
    deadline = time.monotonic() + timeout_s
    while run.outcome() is None:
        assert time.monotonic() < deadline, "the background run did not end"
        time.sleep(0.1)
    return run.outcome()


def job_runs(engine):
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.text(
            "SELECT job, status, trigger, pid, started_by, progress FROM job_runs ORDER BY id")).mappings()]


def test_a_job_runs_in_the_background_and_its_record_says_who_started_it(db):
    run = writes.start("health-snapshot", actor="ana@example.com")
    assert run in writes.running("health-snapshot") or run.finished
    outcome = finished(run)
    assert (outcome.state, outcome.exit_code, outcome.ok) == ("done", 0, True)
    assert outcome.record["status"] == "completed" and outcome.record["trigger"] == "dashboard"
    assert outcome.report["id"] == outcome.record["summary"]["snapshot_id"]  # the --json report
    [row] = job_runs(db)
    assert (row["pid"], row["started_by"], row["trigger"]) == (run.pid, "ana@example.com", "dashboard")
    assert writes.get(run.key) is run and run not in writes.running()


def test_progress_a_job_reports_is_in_its_run_record(db):
    outcome = finished(writes.start("demo-data", "--days", "1", "--events-per-day", "50", "--no-stripe-state",
                                     actor="ana"), timeout_s=120)
    assert outcome.state == "done", outcome.reason
    assert outcome.record["progress"] == {"message": "vacuuming"}  # the last step it reported


def test_a_run_that_finds_the_job_busy_is_told_by_its_record_not_its_message(db):
    with job_lock(db, "health-snapshot"):
        outcome = finished(writes.start("health-snapshot", actor="ana"))
    assert (outcome.state, outcome.exit_code, outcome.ok) == ("busy", 1, False)
    assert outcome.record["status"] == "skipped"
    assert "another health-snapshot run is in progress" in outcome.reason  # shown to the user as is


def test_bad_usage_is_refused_with_the_commands_own_line(db):
    outcome = finished(writes.start("cleanup", "--events-days", "3", "--skip-registrations", actor="ana"))
    assert (outcome.state, outcome.exit_code, outcome.record) == ("refused", 2, None)
    assert outcome.reason.startswith("--events-days must be at least 30")  # no "error: " prefix
    assert job_runs(db) == []  # refused before anything was recorded


@pytest.mark.parametrize("code, record, state", [
    (0, None, "done"), (3, {"status": "needs_review"}, "needs_person"), (2, None, "refused"),
    (1, {"status": "skipped"}, "busy"), (1, {"status": "failed"}, "failed"), (1, None, "failed"),
    (-9, {"status": "running"}, "failed"),
])
def test_outcome_state_comes_from_exit_code_and_record(code, record, state):
    assert writes.outcome_state(code, record) == state


def test_a_read_only_dashboard_may_not_write(db, monkeypatch, database_url):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", database_url)
    monkeypatch.delenv("DATABASE_URL")
    assert "needs DATABASE_URL" in writes.problem()
    with pytest.raises(writes.WriteRefused, match="needs DATABASE_URL"):
        writes.start("health-snapshot", actor="ana")
    with pytest.raises(writes.WriteRefused):
        writes.write(writes.SQL, "claim_job_run", actor="ana", id=1)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert writes.problem() is None
    assert job_runs(db) == []


def test_write_runs_one_named_statement_that_records_its_actor(db):
    outcome = finished(writes.start("health-snapshot", actor="ana"))
    run_id = outcome.record["id"]
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE job_runs SET started_by = NULL"))
    assert writes.write(writes.SQL, "claim_job_run", actor=" bo ", id=run_id) == [{"id": run_id}]
    assert writes.write(writes.SQL, "claim_job_run", actor="cy", id=run_id) == []  # the first claim stands
    assert job_runs(db)[0]["started_by"] == "bo"
    with pytest.raises(writes.WriteRefused, match="needs the name"):
        writes.write(writes.SQL, "claim_job_run", actor="  ", id=run_id)
    with pytest.raises(SqlParameterError, match="unexpected run_id"):
        writes.write(writes.SQL, "claim_job_run", actor="cy", id=run_id, run_id=run_id)


def test_a_write_the_database_refuses_changes_nothing(db):
    statements = Statements()
    statements.add(parse("-- name: two_rows\n-- The second breaks job_runs' status check.\n"
                         "INSERT INTO job_runs (job, status, started_at, started_by)\n"
                         "VALUES ('a', 'completed', now(), :actor), ('b', 'nonsense', now(), :actor)\n",
                         "test.sql"))
    with pytest.raises(writes.WriteFailed, match="job_runs_status_check"):
        writes.write(statements, "two_rows", actor="ana")
    assert job_runs(db) == []


def test_who_started_a_run_is_recorded_even_when_nobody_follows_it(db):
    run = writes.start("health-snapshot", actor="ana@example.com")
    deadline = time.monotonic() + 30
    while not [row for row in job_runs(db) if row["started_by"]]:
        assert time.monotonic() < deadline, job_runs(db)
        time.sleep(0.1)
    [row] = job_runs(db)
    assert row["started_by"] == "ana@example.com" and row["pid"] == run.pid
    run.process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while run._outcome is None:  # collected (and the process reaped) by its watcher
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run.outcome().state == "done"


def test_a_cleanup_started_here_leaves_its_progress_lines_in_its_record(db):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for i in range(5):
            add_event(conn, created_at=now - timedelta(days=100, minutes=i), duration_ms=20)
    outcome = finished(writes.start("cleanup", "--skip-registrations", "--batch-size", "2", actor="ana"))
    assert outcome.state == "done", outcome.reason
    assert outcome.report["events_archived"] == 5 and outcome.record["summary"]["events_archived"] == 5
    # The first line is always written (later ones at most twice a second).
    assert outcome.record["progress"]["message"].startswith("events: ")
