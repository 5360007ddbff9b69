"""The health-snapshot job: sizes, row estimates and oldest rows, recorded for growth charts."""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from jobs.health import snapshot as health_snapshot
from jobs.health.snapshot import human_bytes
from tests.support.factories import add_event, add_registration

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_snapshot_records_sizes_rows_and_oldest_row_per_table(db):
    oldest = NOW - timedelta(days=40)
    with db.begin() as conn:
        for i in range(30):
            add_event(conn, created_at=oldest + timedelta(hours=i), duration_ms=20)
        add_registration(conn, created_at=NOW - timedelta(days=3))
    with db.connect() as conn:
        conn.execute(sa.text("ANALYZE webhook_events"))
        conn.commit()
        real_size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()

    snapshot = health_snapshot.run(db, now=NOW, trigger="schedule")

    with db.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM database_health_snapshots")).mappings().one()
        job = conn.execute(sa.text("SELECT job, status, trigger FROM job_runs")).one()
    assert row["taken_at"] == NOW and row["trigger"] == "schedule"
    assert abs(row["database_size_bytes"] - real_size) < real_size * 0.1
    tables = row["tables"]
    assert {"webhook_events", "registrations", "cleanup_runs", "database_health_snapshots"} <= set(tables)
    events = tables["webhook_events"]
    assert events["row_estimate"] == 30 and events["total_bytes"] > 0
    assert datetime.fromisoformat(events["oldest_row_at"]) == oldest
    assert tables["registrations_archive"]["oldest_row_at"] is None  # empty table
    assert snapshot.id == row["id"] and snapshot.tables["webhook_events"].row_estimate == 30
    assert tuple(job) == ("health-snapshot", "completed", "schedule")


def test_snapshots_accumulate_so_growth_can_be_charted(db):
    health_snapshot.run(db, now=NOW - timedelta(hours=1), trigger="cli")
    with db.begin() as conn:
        for _ in range(200):
            add_event(conn, created_at=NOW, payload={"blob": "x" * 2000})
    health_snapshot.run(db, now=NOW, trigger="cli")
    with db.connect() as conn:
        sizes = conn.execute(sa.text("""
            SELECT (tables -> 'webhook_events' ->> 'total_bytes')::bigint
            FROM database_health_snapshots ORDER BY taken_at""")).scalars().all()
    assert len(sizes) == 2 and sizes[1] > sizes[0]


def test_cli_json(db):
    result = subprocess.run([sys.executable, "-m", "jobs", "health-snapshot", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["database_size_bytes"] > 0 and "webhook_events" in summary["tables"]


@pytest.mark.parametrize("size, text", [(None, "-"), (0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 kB"),
                                        (5 * 1024 ** 3, "5.0 GB")])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


def test_a_snapshot_taken_as_of_30_days_ago_finishes_completed(db):
    """A job handed a `now` long past (a backfill, a test) measures its duration on the
    monotonic clock: it finishes `completed` with its real, short duration."""
    month_ago = NOW - timedelta(days=30)
    snapshot = health_snapshot.run(db, now=month_ago, trigger="cli")
    with db.connect() as conn:
        run = conn.execute(sa.text("SELECT status, started_at, finished_at, duration_ms, error, summary "
                                   "FROM job_runs WHERE job = 'health-snapshot'")).mappings().one()
    assert (run["status"], run["error"]) == ("completed", None)
    assert 0 <= run["duration_ms"] < 60_000
    assert run["started_at"] == month_ago
    assert run["finished_at"] == month_ago + timedelta(milliseconds=run["duration_ms"])
    assert run["summary"]["snapshot_id"] == snapshot.id
