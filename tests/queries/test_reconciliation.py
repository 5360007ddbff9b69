"""The Reconciliation page's queries on a hand-built set of runs and items whose answers are
written out here, and on an empty database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from queries import fetch_df, fetch_one

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
REG_FAILED = "00000000-0000-4000-8000-000000000002"


COUNTERS = ("stripe_payments_found", "local_registrations_found", "mismatches_detected",
            "auto_fixed_count", "manual_review_needed", "sessions_checked", "pages_read",
            "stripe_requests", "already_resolved_count")


def add_run(conn, *, started_at: datetime, status: str = "completed", trigger: str = "cli",
            dry_run: bool = False, lookback_days: int = 7, duration_ms: int | None = 2000,
            error: str | None = None, **counters: int) -> int:
    """Insert one reconciliation_runs row (counters: the five numbers and progress, 0 unless
    given); returns its id. A running row has no finish time or duration yet."""
    unknown = set(counters) - set(COUNTERS)
    assert not unknown, f"not a run counter: {unknown}"
    finished = status != "running"
    return conn.execute(sa.text("""
        INSERT INTO reconciliation_runs (status, trigger, lookback_days, dry_run, window_start,
            window_end, started_at, finished_at, duration_ms, error, stripe_payments_found,
            local_registrations_found, mismatches_detected, auto_fixed_count, manual_review_needed,
            sessions_checked, pages_read, stripe_requests, already_resolved_count)
        VALUES (:status, :trigger, :lookback_days, :dry_run, :window_start, :started_at,
            :started_at, :finished_at, :duration_ms, :error, :stripe_payments_found,
            :local_registrations_found, :mismatches_detected, :auto_fixed_count, :manual_review_needed,
            :sessions_checked, :pages_read, :stripe_requests, :already_resolved_count)
        RETURNING id"""),
        {"status": status, "trigger": trigger, "lookback_days": lookback_days, "dry_run": dry_run,
         "window_start": started_at - lookback_days * DAY, "started_at": started_at,
         "finished_at": started_at + timedelta(milliseconds=duration_ms) if finished else None,
         "duration_ms": duration_ms if finished else None, "error": error,
         **{name: counters.get(name, 0) for name in COUNTERS}}).scalar_one()


def add_item(conn, *, run_id: int, kind: str, created_at: datetime, action: str = "manual_review",
             severity: str = "warning", dry_run: bool = False, session_id: str | None = None,
             registration_id: str | None = None, details: dict | None = None,
             last_seen_run_id: int | None = None, last_seen_at: datetime | None = None,
             resolved_at: datetime | None = None, resolved_by: str | None = None,
             resolution_note: str | None = None) -> int:
    """Insert one reconciliation_items row; returns its id. Last seen defaults to its own run."""
    return conn.execute(sa.text("""
        INSERT INTO reconciliation_items (run_id, kind, stripe_checkout_session_id, registration_id,
            action, severity, dry_run, details, created_at, resolved_at, resolved_by,
            resolution_note, last_seen_run_id, last_seen_at)
        VALUES (:run_id, :kind, :session_id, CAST(:registration_id AS uuid), :action, :severity,
            :dry_run, CAST(:details AS jsonb), :created_at, :resolved_at, :resolved_by,
            :resolution_note, :last_seen_run_id, :last_seen_at)
        RETURNING id"""),
        {"run_id": run_id, "kind": kind, "session_id": session_id, "registration_id": registration_id,
         "action": action, "severity": severity, "dry_run": dry_run,
         "details": json.dumps(details or {}), "created_at": created_at, "resolved_at": resolved_at,
         "resolved_by": resolved_by, "resolution_note": resolution_note,
         "last_seen_run_id": last_seen_run_id or run_id, "last_seen_at": last_seen_at or created_at}
    ).scalar_one()


@pytest.fixture
def tiny(db):
    """Six runs and ten items; ids are returned by name so assertions read like the story.

    Runs, by start: a stale 'running' row (killed process) 6 days ago, an old completed run
    inserted last (so id order is not time order) 5 days ago, a completed run 3 days ago,
    a failed run 2 days ago, a dry run 1 day ago and a run in progress now.
    """
    ids = {}
    with db.begin() as conn:
        ids["completed"] = add_run(
            conn, started_at=T0 - 3 * DAY, stripe_payments_found=10, local_registrations_found=9,
            mismatches_detected=3, auto_fixed_count=1, manual_review_needed=2, sessions_checked=12,
            pages_read=1, stripe_requests=2, already_resolved_count=1)
        ids["failed"] = add_run(
            conn, started_at=T0 - 2 * DAY, status="failed", trigger="schedule", duration_ms=500,
            error="Stripe did not answer", stripe_payments_found=4, mismatches_detected=3,
            manual_review_needed=3, sessions_checked=4, pages_read=1, stripe_requests=1)
        ids["dry"] = add_run(
            conn, started_at=T0 - DAY, trigger="dashboard", dry_run=True, lookback_days=30,
            duration_ms=1500, stripe_payments_found=20, local_registrations_found=18,
            mismatches_detected=3, auto_fixed_count=2, manual_review_needed=1, sessions_checked=25,
            pages_read=2, stripe_requests=3)
        ids["running"] = add_run(
            conn, started_at=T0, status="running", trigger="dashboard", pages_read=3,
            sessions_checked=250, stripe_requests=3, mismatches_detected=1, manual_review_needed=1)
        ids["old"] = add_run(conn, started_at=T0 - 5 * DAY, duration_ms=900, mismatches_detected=2,
                             manual_review_needed=2)
        ids["stale"] = add_run(conn, started_at=T0 - 6 * DAY, status="running", pages_read=1)

        # The completed run: one auto-fix, two queued (one seen again by the failed run).
        ids["fixed"] = add_item(
            conn, run_id=ids["completed"], kind="paid_but_pending", action="auto_fixed",
            created_at=T0 - 3 * DAY, session_id="cs_fixed", resolved_at=T0 - 3 * DAY,
            resolved_by="reconciliation", resolution_note="marked completed by reconciliation")
        ids["paid_failed"] = add_item(
            conn, run_id=ids["completed"], kind="paid_but_failed", severity="critical",
            created_at=T0 - 3 * DAY, session_id="cs_paid_failed", registration_id=REG_FAILED,
            details={"reason": "Stripe says paid, the row says failed", "stripe": {"amount_total": 2500}},
            last_seen_run_id=ids["failed"], last_seen_at=T0 - 2 * DAY)
        ids["not_paid"] = add_item(
            conn, run_id=ids["completed"], kind="completed_not_paid",
            created_at=T0 - 3 * DAY + timedelta(minutes=1), session_id="cs_not_paid",
            details={"reason": "completed but the session expired"})
        # The failed run: one opened before it failed, one a person resolved since.
        ids["amount"] = add_item(
            conn, run_id=ids["failed"], kind="amount_mismatch", severity="critical",
            created_at=T0 - 2 * DAY, session_id="cs_amount", details={"reason": "2500 vs 2000"})
        ids["no_reg"] = add_item(
            conn, run_id=ids["failed"], kind="paid_no_registration",
            created_at=T0 - 2 * DAY + timedelta(minutes=1), session_id="cs_no_reg",
            resolved_at=T0 - DAY, resolved_by="ana@example.com", resolution_note="refunded")
        # The dry run: two would-fix items of one kind and a would-queue critical one, none real.
        ids["would_fix_1"] = add_item(
            conn, run_id=ids["dry"], kind="expired_but_pending", action="auto_fixed", dry_run=True,
            created_at=T0 - DAY, session_id="cs_exp_1")
        ids["would_fix_2"] = add_item(
            conn, run_id=ids["dry"], kind="expired_but_pending", action="auto_fixed", dry_run=True,
            created_at=T0 - DAY, session_id="cs_exp_2")
        ids["dry_queue"] = add_item(
            conn, run_id=ids["dry"], kind="paid_but_failed", severity="critical", dry_run=True,
            created_at=T0 - DAY + timedelta(minutes=5), session_id="cs_dry")
        # The old run: one resolved long ago, one still open at info severity.
        ids["missing"] = add_item(
            conn, run_id=ids["old"], kind="completed_missing_in_stripe", created_at=T0 - 5 * DAY,
            session_id="cs_missing", resolved_at=T0 - 4 * DAY, resolved_by="bo@example.com",
            resolution_note="test row, archived")
        ids["old_open"] = add_item(
            conn, run_id=ids["old"], kind="expired_but_pending", severity="info",
            created_at=T0 - 5 * DAY, session_id="cs_old_open", details={"reason": "still pending"})
    return ids


def test_last_run_is_the_newest_finished_one_dry_runs_included(tiny, dashboard_engine):
    last = fetch_one(dashboard_engine, "reconciliation_last_run")
    # The run in progress (started later) is skipped; the dry run is what the page describes.
    assert last["id"] == tiny["dry"]
    assert (last["status"], last["trigger"], last["dry_run"], last["lookback_days"]) == (
        "completed", "dashboard", True, 30)
    assert (last["stripe_payments_found"], last["local_registrations_found"], last["mismatches_detected"],
            last["auto_fixed_count"], last["manual_review_needed"]) == (20, 18, 3, 2, 1)
    assert (last["sessions_checked"], last["pages_read"], last["stripe_requests"]) == (25, 2, 3)
    assert last["started_at"] == T0 - DAY
    assert last["finished_at"] == T0 - DAY + timedelta(milliseconds=1500)
    assert last["duration_ms"] == 1500 and last["error"] is None


def test_last_run_can_be_a_failed_one(db, dashboard_engine):
    with db.begin() as conn:
        add_run(conn, started_at=T0 - DAY)
        failed = add_run(conn, started_at=T0, status="failed", error="Stripe did not answer")
    last = fetch_one(dashboard_engine, "reconciliation_last_run")
    assert (last["id"], last["status"], last["error"]) == (failed, "failed", "Stripe did not answer")


def test_last_run_is_none_while_the_first_run_is_still_going(db, dashboard_engine):
    with db.begin() as conn:
        add_run(conn, started_at=T0, status="running")
    assert fetch_one(dashboard_engine, "reconciliation_last_run") is None


def test_run_by_id_whatever_its_status(tiny, dashboard_engine):
    failed = fetch_one(dashboard_engine, "reconciliation_run", run_id=tiny["failed"])
    assert (failed["id"], failed["status"], failed["trigger"], failed["error"]) == (
        tiny["failed"], "failed", "schedule", "Stripe did not answer")
    assert (failed["stripe_payments_found"], failed["mismatches_detected"], failed["manual_review_needed"],
            failed["duration_ms"]) == (4, 3, 3, 500)
    running = fetch_one(dashboard_engine, "reconciliation_run", run_id=tiny["running"])
    assert (running["status"], running["finished_at"], running["duration_ms"]) == ("running", None, None)
    assert running["sessions_checked"] == 250
    assert fetch_one(dashboard_engine, "reconciliation_run", run_id=tiny["stale"] + 1) is None


def test_running_run_is_the_newest_one_still_marked_running(tiny, dashboard_engine):
    running = fetch_one(dashboard_engine, "reconciliation_running_run")
    # Not the stale row a killed process left six days ago.
    assert running == {
        "id": tiny["running"], "trigger": "dashboard", "lookback_days": 7, "dry_run": False,
        "started_at": T0, "pages_read": 3, "sessions_checked": 250, "stripe_requests": 3,
        "mismatches_detected": 1, "auto_fixed_count": 0, "manual_review_needed": 1,
        # Its estimated total: what the last completed run over 7 days checked.
        "expected_sessions": 12,
    }


def test_run_history_is_the_last_finished_runs_oldest_first(tiny, dashboard_engine):
    history = fetch_df(dashboard_engine, "reconciliation_run_history", limit=200)
    # By start time, not id; both 'running' rows are left out.
    assert list(history["id"]) == [tiny["old"], tiny["completed"], tiny["failed"], tiny["dry"]]
    assert list(history["status"]) == ["completed", "completed", "failed", "completed"]
    assert list(history["dry_run"]) == [False, False, False, True]
    assert list(history["mismatches_detected"]) == [2, 3, 3, 3]
    assert list(history["auto_fixed_count"]) == [0, 1, 0, 2]
    assert list(history["manual_review_needed"]) == [2, 2, 3, 1]
    assert list(history["duration_ms"]) == [900, 2000, 500, 1500]
    assert list(history["error"].isna()) == [True, True, False, True]

    # The limit keeps the newest runs, still shown oldest first.
    latest_two = fetch_df(dashboard_engine, "reconciliation_run_history", limit=2)
    assert list(latest_two["id"]) == [tiny["failed"], tiny["dry"]]


def kinds(engine, run_id: int) -> list[tuple[str, str, int]]:
    df = fetch_df(engine, "reconciliation_kinds_for_run", run_id=run_id)
    return [(r.kind, r.action, int(r.items)) for r in df.itertuples()]


def test_kinds_for_run_counts_items_opened_or_seen_again(tiny, dashboard_engine):
    assert kinds(dashboard_engine, tiny["completed"]) == [
        ("completed_not_paid", "manual_review", 1),
        ("paid_but_failed", "manual_review", 1),
        ("paid_but_pending", "auto_fixed", 1),
    ]
    # The failed run opened two items and saw the completed run's paid_but_failed again.
    assert kinds(dashboard_engine, tiny["failed"]) == [
        ("amount_mismatch", "manual_review", 1),
        ("paid_but_failed", "manual_review", 1),
        ("paid_no_registration", "manual_review", 1),
    ]
    # A dry run's would-do items, two of one kind.
    assert kinds(dashboard_engine, tiny["dry"]) == [
        ("expired_but_pending", "auto_fixed", 2),
        ("paid_but_failed", "manual_review", 1),
    ]
    assert kinds(dashboard_engine, tiny["running"]) == []


def test_open_items_are_the_real_unresolved_queue_critical_first_then_newest(tiny, dashboard_engine):
    queue = fetch_df(dashboard_engine, "reconciliation_open_items", limit=500)
    # Not the auto-fix, not the two resolved items, not the dry run's would-queue critical one.
    assert list(queue["id"]) == [tiny["amount"], tiny["paid_failed"], tiny["not_paid"], tiny["old_open"]]
    assert list(queue["severity"]) == ["critical", "critical", "warning", "info"]
    assert list(queue["reason"]) == ["2500 vs 2000", "Stripe says paid, the row says failed",
                                     "completed but the session expired", "still pending"]
    paid_failed = queue.set_index("id").loc[tiny["paid_failed"]]
    assert (paid_failed["kind"], paid_failed["stripe_checkout_session_id"], paid_failed["registration_id"],
            paid_failed["run_id"]) == ("paid_but_failed", "cs_paid_failed", REG_FAILED, tiny["completed"])
    assert paid_failed["last_seen_at"] == T0 - 2 * DAY

    top_three = fetch_df(dashboard_engine, "reconciliation_open_items", limit=3)
    assert list(top_three["id"]) == [tiny["amount"], tiny["paid_failed"], tiny["not_paid"]]


def test_item_by_id_with_both_sides_facts(tiny, dashboard_engine):
    item = fetch_one(dashboard_engine, "reconciliation_item", item_id=tiny["paid_failed"])
    assert item == {
        "id": tiny["paid_failed"], "run_id": tiny["completed"], "kind": "paid_but_failed",
        "action": "manual_review", "severity": "critical", "dry_run": False,
        "stripe_checkout_session_id": "cs_paid_failed", "registration_id": REG_FAILED,
        "details": {"reason": "Stripe says paid, the row says failed", "stripe": {"amount_total": 2500}},
        "created_at": T0 - 3 * DAY, "last_seen_at": T0 - 2 * DAY, "last_seen_run_id": tiny["failed"],
        "resolved_at": None, "resolved_by": None, "resolution_note": None,
    }
    resolved = fetch_one(dashboard_engine, "reconciliation_item", item_id=tiny["no_reg"])
    assert (resolved["resolved_at"], resolved["resolved_by"], resolved["resolution_note"]) == (
        T0 - DAY, "ana@example.com", "refunded")
    assert fetch_one(dashboard_engine, "reconciliation_item", item_id=tiny["old_open"] + 1) is None


def test_resolved_items_are_people_resolutions_newest_first(tiny, dashboard_engine):
    resolved = fetch_df(dashboard_engine, "reconciliation_resolved_items", limit=200)
    # The auto-fix is resolved too, but by reconciliation itself: not part of the queue's history.
    assert list(resolved["id"]) == [tiny["no_reg"], tiny["missing"]]
    assert list(resolved["kind"]) == ["paid_no_registration", "completed_missing_in_stripe"]
    assert list(resolved["resolved_by"]) == ["ana@example.com", "bo@example.com"]
    assert list(resolved["resolution_note"]) == ["refunded", "test row, archived"]
    assert list(resolved["resolved_at"]) == [T0 - DAY, T0 - 4 * DAY]
    assert list(fetch_df(dashboard_engine, "reconciliation_resolved_items", limit=1)["id"]) == [tiny["no_reg"]]


ROW_QUERIES = [("reconciliation_last_run", {}), ("reconciliation_run", {"run_id": 1}),
               ("reconciliation_running_run", {}), ("reconciliation_item", {"item_id": 1})]
TABLE_QUERIES = [
    ("reconciliation_run_history", {"limit": 200},
     ["id", "status", "trigger", "dry_run", "lookback_days", "started_at", "duration_ms",
      "stripe_payments_found", "local_registrations_found", "mismatches_detected", "auto_fixed_count",
      "manual_review_needed", "sessions_checked", "stripe_requests", "error"]),
    ("reconciliation_kinds_for_run", {"run_id": 1}, ["kind", "action", "items"]),
    ("reconciliation_open_items", {"limit": 500},
     ["id", "kind", "severity", "stripe_checkout_session_id", "registration_id", "created_at",
      "last_seen_at", "run_id", "reason", "details"]),
    ("reconciliation_resolved_items", {"limit": 200},
     ["id", "kind", "severity", "stripe_checkout_session_id", "registration_id", "created_at",
      "resolved_at", "resolved_by", "resolution_note"]),
]


@pytest.mark.parametrize("name, params", ROW_QUERIES)
def test_row_queries_on_an_empty_database_return_no_row(dashboard_engine, name, params):
    assert fetch_one(dashboard_engine, name, **params) is None


@pytest.mark.parametrize("name, params, columns", TABLE_QUERIES)
def test_table_queries_on_an_empty_database_return_no_rows_with_their_columns(
        dashboard_engine, name, params, columns):
    df = fetch_df(dashboard_engine, name, **params)
    assert df.empty and list(df.columns) == columns
