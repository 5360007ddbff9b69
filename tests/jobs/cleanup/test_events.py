"""Cleanup's webhook-event archival: batches, nothing lost, failed events kept, dry run, lock."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.errors import ConfigError, JobBusy
from jobs.cleanup import command as cleanup
from jobs.runtime import job_lock
from tests.support.factories import add_event

# job_runs measures durations against the wall clock, so runs start at the real now.
NOW = datetime.now(timezone.utc).replace(microsecond=0)
OLD = NOW - timedelta(days=120)
RECENT = NOW - timedelta(days=10)

EVENT_COLUMNS = ("id, stripe_event_id, event_type, processing_status, payload, error_message, attempts, "
                 "created_at, processed_at, processing_duration_ms, livemode, error_category")


def events(engine, table="webhook_events") -> dict:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {EVENT_COLUMNS} FROM {table}")).mappings().all()
    return {row["stripe_event_id"]: dict(row) for row in rows}


def cleanup_runs(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM cleanup_runs ORDER BY id")).mappings().all()


@pytest.fixture
def history(db):
    """23 old completed events, old failed/pending/processing ones, and recent completed ones."""
    with db.begin() as conn:
        old_completed = [add_event(conn, created_at=OLD + timedelta(minutes=i), duration_ms=40,
                                   payload={"n": i, "nested": {"amount": 2500}}) for i in range(23)]
        old_failed = [add_event(conn, created_at=OLD, status="failed", error="boom", error_category="database",
                                duration_ms=10) for _ in range(3)]
        old_open = [add_event(conn, created_at=OLD, status="pending"),
                    add_event(conn, created_at=OLD, status="processing")]
        recent = [add_event(conn, created_at=RECENT, duration_ms=30) for _ in range(4)]
    return {"old_completed": old_completed, "old_failed": old_failed, "old_open": old_open, "recent": recent}


def test_archival_moves_old_completed_events_in_batches_and_keeps_every_row(db, history):
    before = events(db)
    report = cleanup.run(db, now=NOW, skip_registrations=True, batch_size=10, trigger="cli")

    live, archived = events(db), events(db, "webhook_events_archive")
    assert set(archived) == set(history["old_completed"])
    assert set(live) == set(history["old_failed"] + history["old_open"] + history["recent"])
    assert set(live) | set(archived) == set(before) and not set(live) & set(archived)
    for event_id, row in archived.items():  # the archive holds the rows as they were
        assert row == before[event_id]
    assert (report.events_matched, report.events_archived, report.event_batches) == (23, 23, 3)
    assert (report.events_kept_failed, report.events_kept_open) == (3, 2)
    [run] = cleanup_runs(db)
    assert run["status"] == "completed" and run["events_archived"] == 23 and run["registrations_skipped"]
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_events_archive WHERE cleanup_run_id = :id"),
                            {"id": run["id"]}).scalar() == 23

    second = cleanup.run(db, now=NOW, skip_registrations=True, batch_size=10, trigger="cli")
    assert (second.events_matched, second.events_archived, second.event_batches) == (0, 0, 0)
    assert events(db) == live and events(db, "webhook_events_archive") == archived


def test_a_run_given_a_now_30_days_in_the_past_finishes_completed(db, history):
    past = NOW - timedelta(days=30)
    report = cleanup.run(db, now=past, events_days=cleanup.MIN_EVENTS_DAYS, skip_registrations=True)

    assert report.status == "completed" and report.events_archived == 23
    [run] = cleanup_runs(db)
    assert run["status"] == "completed" and run["error"] is None
    assert 0 <= run["duration_ms"] < 60_000  # its own duration, not the 30 days since `now`
    assert run["started_at"] == past and past <= run["finished_at"] < past + timedelta(minutes=1)


def test_failed_events_survive_any_retention(db, history):
    with db.begin() as conn:
        ancient = add_event(conn, created_at=NOW - timedelta(days=3650), status="failed", error="timeout")
    cleanup.run(db, now=NOW, events_days=cleanup.MIN_EVENTS_DAYS, skip_registrations=True, trigger="cli")
    live = events(db)
    assert set(live) == set(history["old_failed"] + history["old_open"] + history["recent"] + [ancient])
    assert all(live[e]["processing_status"] == "failed" for e in history["old_failed"])


def test_dry_run_counts_but_changes_nothing(db, history):
    before_live, before_archive = events(db), events(db, "webhook_events_archive")
    report = cleanup.run(db, now=NOW, skip_registrations=True, dry_run=True, trigger="cli")
    assert events(db) == before_live and events(db, "webhook_events_archive") == before_archive
    assert report.events_matched == 23 and report.events_archived == 0
    assert "23 completed would be archived" in "\n".join(report.summary_lines())
    [run] = cleanup_runs(db)
    assert run["dry_run"] and run["status"] == "completed" and run["events_matched"] == 23
    with db.connect() as conn:  # a dry run records no health snapshot either
        assert conn.execute(sa.text("SELECT count(*) FROM database_health_snapshots")).scalar() == 0


def test_a_row_a_handler_holds_is_skipped_not_waited_for(db, history):
    held = history["old_completed"][0]
    with db.connect() as handler:
        handler.execute(sa.text("SELECT 1 FROM webhook_events WHERE stripe_event_id = :id FOR UPDATE"), {"id": held})
        report = cleanup.run(db, now=NOW, skip_registrations=True, batch_size=5, trigger="cli")
        assert report.events_archived == 22
        handler.rollback()
    assert held in events(db)
    again = cleanup.run(db, now=NOW, skip_registrations=True, trigger="cli")
    assert again.events_archived == 1 and held in events(db, "webhook_events_archive")


def test_real_run_records_a_health_snapshot(db, history):
    report = cleanup.run(db, now=NOW, skip_registrations=True, trigger="cli")
    with db.connect() as conn:
        row = conn.execute(sa.text("SELECT id, trigger, taken_at FROM database_health_snapshots")).one()
    assert row.id == report.health_snapshot_id and row.trigger == "cleanup" and row.taken_at == NOW


def test_second_cleanup_while_one_runs_is_skipped(db, history):
    with job_lock(db, "cleanup"):
        with pytest.raises(JobBusy):
            cleanup.run(db, now=NOW, skip_registrations=True, trigger="cli")
    assert events(db, "webhook_events_archive") == {} and cleanup_runs(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM job_runs WHERE job = 'cleanup'")).scalar() == "skipped"


def test_cli_exits_1_with_one_line_when_another_cleanup_holds_the_lock(db, history):
    with job_lock(db, "cleanup"):
        result = subprocess.run([sys.executable, "-m", "jobs", "cleanup", "--skip-registrations"],
                                capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "skipped: another cleanup run is in progress; nothing was done"


def test_without_stripe_key_nothing_is_done_and_exit_is_2(db, history, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="STRIPE_API_KEY is not set"):
        cleanup.run(db, now=NOW, trigger="cli")
    assert events(db, "webhook_events_archive") == {}
    [run] = cleanup_runs(db)
    assert run["status"] == "failed" and "--skip-registrations" in run["error"]

    env = {k: v for k, v in os.environ.items() if k != "STRIPE_API_KEY"}
    result = subprocess.run([sys.executable, "-m", "jobs", "cleanup"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "STRIPE_API_KEY is not set" in result.stderr


def test_cli_json_summary_with_skip_registrations(db, history):
    result = subprocess.run([sys.executable, "-m", "jobs", "cleanup", "--skip-registrations", "--json",
                             "--events-days", "100"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = __import__("json").loads(result.stdout)
    assert summary["events_archived"] == 23 and summary["status"] == "completed"
    assert summary["registrations_skipped"] is True
    assert result.stderr == ""  # quiet under --json


@pytest.mark.parametrize("option", [["--events-days", "3"], ["--pending-days", "0"], ["--batch-size", "0"]])
def test_unsafe_options_exit_2(db, option):
    result = subprocess.run([sys.executable, "-m", "jobs", "cleanup", "--skip-registrations", *option],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_archive_keeps_every_column_of_webhook_events(db):
    """A column added to webhook_events must reach the archive too, or archival would drop it."""
    with db.begin() as conn:
        columns = conn.execute(sa.text("""
            SELECT column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'webhook_events'""")).scalars().all()
        archive_columns = set(conn.execute(sa.text("""
            SELECT column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'webhook_events_archive'""")).scalars())
        # retry_claimed_until is a lease held while a re-delivery is in flight (jobs/replay/retry.py):
        # the one column an archived event has no use for.
        assert set(columns) - {"retry_claimed_until"} <= archive_columns
        add_event(conn, created_at=OLD, duration_ms=5, error_category="network")
        # Fill every column, so a column the archival statement leaves out shows up as a difference.
        conn.execute(sa.text("""UPDATE webhook_events SET outcome = 'registration_completed',
                                registration_id = gen_random_uuid(), error_details = '{"k": 1}',
                                processing_started_at = created_at, error_message = 'earlier attempt',
                                recovery_action = 'investigate', alert_level = 'warning',
                                next_retry_at = created_at, raw_payload = '{"id": "evt_raw"}'"""))
        before = conn.execute(sa.text("SELECT to_jsonb(e) - 'retry_claimed_until' FROM webhook_events e")).scalar_one()
    cleanup.run(db, now=NOW, skip_registrations=True, trigger="cli")
    with db.connect() as conn:
        after = conn.execute(sa.text("SELECT to_jsonb(a) FROM webhook_events_archive a")).scalar_one()
    assert None not in before.values()
    assert {name: after[name] for name in before} == before
