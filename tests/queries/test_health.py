"""The Health page's queries (queries/health.sql) on hand-built rows whose answers are written out here."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from queries import fetch_df

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)  # window start
WINDOW = {"start": T0, "end": T0 + timedelta(hours=3)}


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def plain(value):
    """A cell as plain Python: NaN/NaT/None -> None, numpy ints -> int, Timestamps -> datetime."""
    if value is None or (not isinstance(value, (dict, list)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def rows(df: pd.DataFrame, *columns: str) -> list[tuple]:
    return [tuple(plain(v) for v in row) for row in df[list(columns)].itertuples(index=False)]


def insert(conn, table: str, values: dict):
    """One row into a health table; returns its id. Column names come from this file only."""
    json_columns = {"tables", "summary", "details", "row_data"}
    placeholders = ", ".join(f"CAST(:{c} AS jsonb)" if c in json_columns else f":{c}" for c in values)
    params = {c: json.dumps(v) if c in json_columns else v for c, v in values.items()}
    return conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({placeholders}) RETURNING id"),
                        params).scalar_one()


def table(total_bytes: int, row_estimate: int | None, oldest_row_at: str | None = None) -> dict:
    return {"total_bytes": total_bytes, "row_estimate": row_estimate, "oldest_row_at": oldest_row_at}


# --- database_health_snapshots -----------------------------------------------------------

@pytest.fixture
def snapshots(db):
    """Snapshots around the 10:00-13:00 window; hour 11 has none."""
    with db.begin() as conn:
        for taken_at, size, tables in [
            (at(hours=-10, minutes=-30), 800, {"a": table(80, 8)}),        # 19th 23:30 UTC
            (at(minutes=-1), 900, {"a": table(90, 9)}),                     # just before the window
            (at(minutes=5), 1000, {"a": table(100, 10), "b": table(200, 20)}),
            (at(minutes=50), 1100, {"a": table(110, 11), "b": table(250, 25)}),
            (at(hours=2), 1300, {"a": table(130, 13), "b": table(300, 30)}),
            (at(hours=3, seconds=-1), 1400, {"a": table(140, 14), "b": table(350, 35), "c": table(16, None)}),
            (at(hours=3), 2000, {  # at the window's end (excluded there), and the latest of all
                "a": table(500, 50, "2026-01-01T00:00:00+00:00"),
                "b": table(500, None),
                "c": table(900, 90, "2026-06-30T12:00:00+00:00")}),
        ]:
            insert(conn, "database_health_snapshots",
                   {"taken_at": taken_at, "trigger": "cli", "database_size_bytes": size, "tables": tables})
    return db


def test_database_size_history_keeps_the_last_snapshot_of_each_hour(snapshots, dashboard_engine):
    df = fetch_df(dashboard_engine, "database_size_history", **WINDOW, bucket="hour")
    # 09:59 is before the window and 13:00 is its (exclusive) end; hour 11 has no snapshot.
    assert rows(df, "taken_at", "database_size_bytes") == [(at(minutes=50), 1100),
                                                           (at(hours=3, seconds=-1), 1400)]


def test_database_size_history_buckets_days_in_utc_whatever_the_session_zone(snapshots, dashboard_engine):
    with dashboard_engine.connect() as conn:
        # In Berlin 23:30 UTC on the 19th is already the 20th; the query promises UTC days.
        conn.execute(sa.text("SET LOCAL TIME ZONE 'Europe/Berlin'"))
        df = fetch_df(conn, "database_size_history", start=datetime(2026, 11, 19, tzinfo=timezone.utc),
                      end=datetime(2026, 11, 21, tzinfo=timezone.utc), bucket="day")
    assert rows(df, "taken_at", "database_size_bytes") == [(at(hours=-10, minutes=-30), 800), (at(hours=3), 2000)]


def test_table_growth_gives_each_table_at_the_last_snapshot_of_each_hour(snapshots, dashboard_engine):
    df = fetch_df(dashboard_engine, "table_growth", **WINDOW, bucket="hour")
    late = at(hours=3, seconds=-1)
    assert rows(df, "taken_at", "table_name", "total_bytes", "row_estimate") == [
        (at(minutes=50), "a", 110, 11),
        (at(minutes=50), "b", 250, 25),
        (late, "a", 140, 14),
        (late, "b", 350, 35),
        (late, "c", 16, None),  # not analysed yet: no estimate, not zero
    ]


def test_latest_tables_reads_only_the_newest_snapshot_largest_first(snapshots, dashboard_engine):
    df = fetch_df(dashboard_engine, "latest_tables")
    assert rows(df, "taken_at", "database_size_bytes", "table_name", "total_bytes", "row_estimate",
                "oldest_row_at") == [
        (at(hours=3), 2000, "c", 900, 90, datetime(2026, 6, 30, 12, tzinfo=timezone.utc)),
        (at(hours=3), 2000, "a", 500, 50, datetime(2026, 1, 1, tzinfo=timezone.utc)),
        (at(hours=3), 2000, "b", 500, None, None),  # same size as "a": by name
    ]


# --- job_runs ----------------------------------------------------------------------------

@pytest.fixture
def job_runs(db):
    """Three jobs' runs before, inside and at the end of the window; returns their ids by label."""
    ids = {}
    with db.begin() as conn:
        for label, job, status, trigger, started_at, duration_ms, error in [
            ("r_old", "reconcile", "failed", "cli", at(hours=-2), 100, "old boom"),
            ("r_ok", "reconcile", "completed", "schedule", at(hours=1), 1000, None),
            ("r_fail", "reconcile", "failed", "schedule", at(hours=2), 300, "Stripe answered 500"),
            ("c_old", "cleanup", "completed", "cli", at(hours=-24), 400, None),
            ("c_review", "cleanup", "needs_review", "dashboard", at(minutes=30), 600, None),
            ("c_ok", "cleanup", "completed", "schedule", at(minutes=90), 200, None),
            ("c_running", "cleanup", "running", "schedule", at(hours=2, minutes=50), None, None),
            ("h_old", "health-snapshot", "completed", "schedule", at(hours=-5), 50, None),
            ("h_skipped", "health-snapshot", "skipped", "schedule", at(minutes=10), 5,
             "another health-snapshot run holds the lock"),
            ("h_end", "health-snapshot", "completed", "schedule", at(hours=3), 40, None),
            # Starts at the same instant as r_ok: inserted later, so listed first.
            ("h_tie", "health-snapshot", "completed", "cli", at(hours=1), 30, None),
        ]:
            finished = None if duration_ms is None else started_at + timedelta(milliseconds=duration_ms)
            ids[label] = insert(conn, "job_runs", {
                "job": job, "status": status, "trigger": trigger, "started_at": started_at,
                "finished_at": finished, "duration_ms": duration_ms, "error": error, "host": "test-host",
                "summary": {"label": label}})
    return ids


JOB_SUMMARY_COLUMNS = ("job", "last_run_at", "last_status", "last_trigger", "last_duration_ms", "last_success_at",
                       "last_failure_at", "last_error", "runs", "failures", "avg_duration_ms")


def test_job_summary_one_row_per_job_with_last_success_failure_and_counts_since(job_runs, dashboard_engine):
    df = fetch_df(dashboard_engine, "job_summary", since=T0)
    assert rows(df, *JOB_SUMMARY_COLUMNS) == [
        # A run still going is the latest run; averages count finished successes only
        # (needs_review is a success: the job did its work and left something for a person).
        ("cleanup", at(hours=2, minutes=50), "running", "schedule", None, at(minutes=90),
         None, None, 3, 0, 400),
        # A skipped run (lock held) counts as a run, not as a failure, and its message is no error.
        ("health-snapshot", at(hours=3), "completed", "schedule", 40, at(hours=3),
         None, None, 3, 0, 35),
        # The failure before :since still is no "last" one: the newest failure's error is shown.
        ("reconcile", at(hours=2), "failed", "schedule", 300, at(hours=1),
         at(hours=2), "Stripe answered 500", 2, 1, 1000),
    ]


def test_job_summary_keeps_jobs_with_no_run_since(job_runs, dashboard_engine):
    df = fetch_df(dashboard_engine, "job_summary", since=at(hours=4))
    assert rows(df, "job", "last_run_at", "last_success_at", "last_failure_at", "runs", "failures",
                "avg_duration_ms") == [
        ("cleanup", at(hours=2, minutes=50), at(minutes=90), None, 0, 0, None),
        ("health-snapshot", at(hours=3), at(hours=3), None, 0, 0, None),
        ("reconcile", at(hours=2), at(hours=1), at(hours=2), 0, 0, None),
    ]


def test_job_history_lists_runs_in_the_window_newest_first(job_runs, dashboard_engine):
    df = fetch_df(dashboard_engine, "job_history", **WINDOW, job=None, limit=100)
    # r_old, c_old and h_old started before the window; h_end at its exclusive end.
    expected = ["c_running", "r_fail", "c_ok", "h_tie", "r_ok", "c_review", "h_skipped"]
    assert df["id"].tolist() == [job_runs[label] for label in expected]
    first = df.iloc[1]
    assert (first["job"], first["status"], first["trigger"], first["duration_ms"], first["host"], first["error"]) \
        == ("reconcile", "failed", "schedule", 300, "test-host", "Stripe answered 500")
    assert first["finished_at"] == at(hours=2, seconds=0.3) and first["summary"] == {"label": "r_fail"}


def test_job_history_limit_and_job_filter(job_runs, dashboard_engine):
    newest = fetch_df(dashboard_engine, "job_history", **WINDOW, job=None, limit=3)
    assert newest["id"].tolist() == [job_runs["c_running"], job_runs["r_fail"], job_runs["c_ok"]]
    cleanup = fetch_df(dashboard_engine, "job_history", **WINDOW, job="cleanup", limit=100)
    assert cleanup["id"].tolist() == [job_runs["c_running"], job_runs["c_ok"], job_runs["c_review"]]
    assert fetch_df(dashboard_engine, "job_history", **WINDOW, job="no-such-job", limit=100).empty


# --- cleanup_runs and registrations_archive ----------------------------------------------

@pytest.fixture
def cleanups(db):
    """Four cleanup runs (one a dry run, two at the same instant) and four removed registrations."""
    runs, archived = {}, {}
    with db.begin() as conn:
        for label, status, dry_run, started_at, archived_events, archived_regs, error in [
            ("oldest", "completed", False, at(hours=-24), 10, 2, None),
            ("dry", "completed", True, T0, 7, 1, None),
            ("failed", "failed", False, at(hours=1), 0, 0, "lost the connection"),
            ("review", "needs_review", False, at(hours=1), 3, 1, None),  # same start, inserted later
        ]:
            runs[label] = insert(conn, "cleanup_runs", {
                "status": status, "trigger": "cli", "dry_run": dry_run, "pending_days": 7,
                "events_days": 90, "started_at": started_at, "duration_ms": 1500,
                "events_matched": archived_events, "events_archived": archived_events,
                "event_batches": 1 if archived_events else 0, "events_kept_failed": 4,
                "stale_pending_found": archived_regs + 2, "registrations_archived": archived_regs,
                "registrations_kept_paid": 1, "registrations_kept_open": 1,
                "registrations_queued": 1 if status == "needs_review" else 0,
                "details": {"label": label}, "error": error})
        for label, archived_at, created_at, reason, run in [
            ("first", T0, at(hours=-40 * 24), "no_session", "oldest"),
            ("older_row", at(hours=1), at(hours=-50 * 24), "session_expired", "review"),
            ("newer_row", at(hours=1), at(hours=-35 * 24), "session_not_found", "review"),
            ("long_ago", at(hours=-24), at(hours=-60 * 24), "no_session", "oldest"),
        ]:
            archived[label] = insert(conn, "registrations_archive", {
                "id": str(uuid.uuid4()), "stripe_checkout_session_id": f"cs_test_{label}",
                "email": f"{label}@example.com", "processing_status": "pending", "amount_total": 2500,
                "currency": "eur", "created_at": created_at, "archived_at": archived_at,
                "archive_reason": reason, "stripe_session_status": "expired" if reason == "session_expired" else None,
                "stripe_payment_status": "unpaid" if reason == "session_expired" else None,
                "cleanup_run_id": runs[run], "row_data": {"label": label}})
    return runs, archived


def test_cleanup_history_newest_first_dry_runs_included(cleanups, dashboard_engine):
    runs, _ = cleanups
    df = fetch_df(dashboard_engine, "cleanup_history", limit=10)
    assert rows(df, "id", "status", "dry_run", "started_at", "events_archived", "registrations_archived",
                "registrations_queued", "error") == [
        (runs["review"], "needs_review", False, at(hours=1), 3, 1, 1, None),
        (runs["failed"], "failed", False, at(hours=1), 0, 0, 0, "lost the connection"),
        (runs["dry"], "completed", True, T0, 7, 1, 0, None),
        (runs["oldest"], "completed", False, at(hours=-24), 10, 2, 0, None),
    ]
    assert df["details"].tolist()[0] == {"label": "review"}


def test_cleanup_history_limit_keeps_the_newest(cleanups, dashboard_engine):
    runs, _ = cleanups
    df = fetch_df(dashboard_engine, "cleanup_history", limit=2)
    assert df["id"].tolist() == [runs["review"], runs["failed"]]


def test_recently_archived_registrations_newest_removal_first(cleanups, dashboard_engine):
    runs, archived = cleanups
    df = fetch_df(dashboard_engine, "recently_archived_registrations", limit=3)
    # Same archived_at: the more recently created registration first; "long_ago" is past the limit.
    assert rows(df, "email", "archived_at", "created_at", "archive_reason", "stripe_session_status",
                "stripe_payment_status", "cleanup_run_id", "amount_total", "currency") == [
        ("newer_row@example.com", at(hours=1), at(hours=-35 * 24), "session_not_found", None, None,
         runs["review"], 2500, "eur"),
        ("older_row@example.com", at(hours=1), at(hours=-50 * 24), "session_expired", "expired", "unpaid",
         runs["review"], 2500, "eur"),
        ("first@example.com", T0, at(hours=-40 * 24), "no_session", None, None, runs["oldest"], 2500, "eur"),
    ]
    # The id comes back as text, ready to show (a UUID object reaches the browser as bytes).
    assert df["id"].tolist() == [str(archived[k]) for k in ("newer_row", "older_row", "first")]


# --- an empty database -------------------------------------------------------------------

@pytest.mark.parametrize("name, params, columns", [
    ("database_size_history", {**WINDOW, "bucket": "hour"}, ["taken_at", "database_size_bytes"]),
    ("table_growth", {**WINDOW, "bucket": "day"}, ["taken_at", "table_name", "total_bytes", "row_estimate"]),
    ("latest_tables", {}, ["taken_at", "database_size_bytes", "table_name", "total_bytes", "row_estimate",
                           "oldest_row_at"]),
    ("job_summary", {"since": T0}, list(JOB_SUMMARY_COLUMNS)),
    ("job_history", {**WINDOW, "job": None, "limit": 200},
     ["id", "job", "status", "trigger", "started_at", "finished_at", "duration_ms", "host", "error", "summary"]),
    ("cleanup_history", {"limit": 30},
     ["id", "status", "trigger", "dry_run", "started_at", "duration_ms", "pending_days", "events_days",
      "events_matched", "events_archived", "event_batches", "events_kept_failed", "stale_pending_found",
      "registrations_archived", "registrations_kept_paid", "registrations_kept_open", "registrations_unchecked",
      "registrations_fixed", "registrations_queued", "reconciliation_run_id", "registrations_skipped",
      "details", "error"]),
    ("recently_archived_registrations", {"limit": 50},
     ["id", "email", "amount_total", "currency", "created_at", "archived_at", "archive_reason",
      "stripe_checkout_session_id", "stripe_session_status", "stripe_payment_status", "cleanup_run_id"]),
])
def test_queries_run_on_an_empty_database(dashboard_engine, name, params, columns):
    # The page branches on .empty and picks columns by name, so an empty result keeps its columns.
    df = fetch_df(dashboard_engine, name, **params)
    assert df.empty
    assert list(df.columns) == columns
