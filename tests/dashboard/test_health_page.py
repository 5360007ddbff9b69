"""The Health page (AppTest) and its figure builders."""

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import auth
from dashboard.components.text import markdown_literal
from dashboard.views.health import figures as hf
from jobs.cleanup import command as cleanup
from jobs.health import snapshot as health_snapshot
from jobs.runtime import job_lock, recorded_run
from queries import fetch_df
from tests.conftest import REPO
from tests.support.factories import add_event

PAGE = str(REPO / "dashboard" / "views" / "health" / "page.py")
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def page() -> AppTest:
    st.cache_data.clear()  # results are cached per process; each test reads its own data
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[auth.IDENTITY_KEY] = "ana@example.com"  # what the entry script's login sets
    at.run()
    assert not at.exception, at.exception
    return at


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page that has ``column``."""
    return next(el.value for el in at.dataframe if column in el.value.columns)


def until_result(at: AppTest, timeout_s: float = 60) -> AppTest:
    """Rerun the page until the background cleanup it started has ended and its result shows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and "cleanup_result" not in at.session_state:
        time.sleep(0.2)
        at.run()
    assert not at.exception, at.exception
    return at


def count(engine, sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


@pytest.fixture
def history(db):
    """Old and new events, two snapshots, a cleanup run and a failed reconciliation."""
    with db.begin() as conn:
        for i in range(5):
            add_event(conn, created_at=NOW - timedelta(days=200, minutes=i), duration_ms=30)
        add_event(conn, created_at=NOW - timedelta(days=200), status="failed", error="boom")
        add_event(conn, created_at=NOW - timedelta(hours=1), duration_ms=30)
    health_snapshot.run(db, now=NOW - timedelta(hours=3), trigger="cli")
    cleanup.run(db, now=NOW - timedelta(hours=2), events_days=365, skip_registrations=True, trigger="cli")
    with pytest.raises(RuntimeError):
        with recorded_run(db, "reconcile", now=NOW - timedelta(hours=1), trigger="schedule"):
            raise RuntimeError("Stripe answered 500")
    return db


def test_page_shows_growth_jobs_and_cleanup_history(history):
    at = page()
    charts = {json.loads(el.proto.spec)["layout"]["title"]["text"] for el in at.get("plotly_chart")}
    assert {"Database size", "Size by table (with indexes)", "Job runs", "Archived per cleanup run"} <= charts
    assert at.metric[0].label == "Database size" and at.metric[0].value.endswith("MB")
    jobs = table_with(at, "last_success_at").set_index("job")
    assert set(jobs.index) == {"cleanup", "health-snapshot", "reconcile"}
    assert jobs.loc["reconcile", "last_status"] == "failed" and "Stripe answered 500" in jobs.loc["reconcile", "last_error"]
    assert jobs.loc["reconcile", "last_success_at"] == "never"
    assert jobs.loc["cleanup", "last_status"] == "completed"
    runs = table_with(at, "registrations_kept_paid")
    assert runs["events_archived"].tolist() == [0] and not runs["dry_run"].iloc[0]


def test_run_cleanup_is_a_dry_run_unless_confirmed(history):
    with history.begin() as conn:
        add_event(conn, created_at=NOW - timedelta(days=100), duration_ms=30)  # older than the default 90 days
    live_before = count(history, "SELECT count(*) FROM webhook_events")
    to_move = count(history, "SELECT count(*) FROM webhook_events WHERE processing_status = 'completed' "
                             "AND created_at < now() - interval '90 days'")
    assert to_move == 6
    at = page()
    at.checkbox(key="cleanup_skip_registrations").check().run()
    at.button(key="cleanup_dry_run").click().run()
    assert not at.exception
    until_result(at)
    assert count(history, "SELECT count(*) FROM webhook_events") == live_before
    assert count(history, "SELECT count(*) FROM cleanup_runs WHERE dry_run AND trigger = 'dashboard'") == 1
    assert any("Dry run finished: completed" in el.value for el in at.success)

    at.button(key="cleanup_for_real").click().run()
    assert any("Archive completed webhook events older than 90 days?" in el.value for el in at.warning)
    assert count(history, "SELECT count(*) FROM webhook_events") == live_before  # asked, not done
    at.button(key="cleanup_confirmed").click().run()
    assert not at.exception
    assert not any("Cleanup finished" in el.value for el in at.success)  # the dry run's result is gone
    until_result(at)
    assert count(history, "SELECT count(*) FROM webhook_events") == live_before - to_move
    assert count(history, "SELECT count(*) FROM cleanup_runs WHERE NOT dry_run AND trigger = 'dashboard'") == 1
    assert any("Cleanup finished: completed" in el.value for el in at.success)
    assert not at.button(key="cleanup_for_real").disabled


def test_a_cleanup_running_elsewhere_is_followed_instead_of_offering_the_buttons(history):
    with job_lock(history, "cleanup"):
        at = page()
        assert any("A cleanup run is in progress" in el.value for el in at.warning)
        assert not any(b.key in ("cleanup_dry_run", "cleanup_for_real") for b in at.button)
    at.run()  # the lock is free again: the buttons are back
    assert not at.button(key="cleanup_dry_run").disabled


def test_cancel_runs_nothing(history):
    at = page()
    at.button(key="cleanup_for_real").click().run()
    at.button(key="cleanup_cancelled").click().run()
    assert not at.exception and not any(b.key == "cleanup_confirmed" for b in at.button)
    assert count(history, "SELECT count(*) FROM cleanup_runs WHERE trigger = 'dashboard'") == 0


def test_missing_stripe_key_is_shown_not_raised(history, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    at = page()
    at.button(key="cleanup_dry_run").click().run()
    until_result(at)
    # The job's own line, shown as text (escaped for Markdown), not as formatting.
    expected = "Dry run did not start: " + markdown_literal("STRIPE_API_KEY is not set")
    assert any(expected in el.value for el in at.error), [el.value for el in at.error]


def test_read_only_dashboard_url_alone_disables_the_action(history, monkeypatch, database_url):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", database_url)
    monkeypatch.delenv("DATABASE_URL")
    at = page()
    assert at.button(key="cleanup_dry_run").disabled and at.button(key="cleanup_for_real").disabled
    assert any("needs DATABASE_URL" in el.value for el in at.warning)


def test_empty_database_renders(db):
    at = page()
    assert any("No health snapshot yet" in el.value for el in at.info)


# --- figure builders ----------------------------------------------------------------------

def growth_frame():
    t0, t1 = NOW - timedelta(hours=1), NOW
    rows = [(t, name, size, rows) for t, scale in ((t0, 1), (t1, 2))
            for name, size, rows in (("webhook_events", 800 * scale, 100 * scale), ("registrations", 300, 10),
                                     ("job_runs", 50, None), ("cleanup_runs", 20, 2))]
    return pd.DataFrame(rows, columns=["taken_at", "table_name", "total_bytes", "row_estimate"])


def test_table_size_chart_keeps_the_largest_tables_and_sums_the_rest():
    fig = hf.table_size_chart(growth_frame(), top=2)
    traces = {trace.name: list(trace.y) for trace in fig.data}
    assert traces == {"webhook_events": [800, 1600], "registrations": [300, 300], "other tables": [70, 70]}


def test_rows_chart_skips_tables_not_analysed():
    fig = hf.table_rows_chart(growth_frame(), top=5)
    assert {trace.name for trace in fig.data} == {"webhook_events", "registrations", "cleanup_runs"}


def test_size_change():
    history = pd.DataFrame({"taken_at": [NOW, NOW - timedelta(days=1)], "database_size_bytes": [5000, 3000]})
    assert hf.size_change(history) == (5000, 2000)
    assert hf.size_change(history.head(1)) == (5000, None)
    assert hf.size_change(history.head(0)) == (None, None)


def test_empty_frames_give_no_data_figures():
    empty = pd.DataFrame(columns=["taken_at", "table_name", "total_bytes", "row_estimate"])
    for fig in (hf.table_size_chart(empty), hf.table_rows_chart(empty),
                hf.database_size_chart(pd.DataFrame(columns=["taken_at", "database_size_bytes"]))):
        assert not fig.data and "No health snapshot" in fig.layout.annotations[0].text


def test_cleanup_table_shows_what_a_dry_run_would_have_archived(db):
    cleanup.run(db, now=NOW, dry_run=True, skip_registrations=True, trigger="cli")
    with db.begin() as conn:
        add_event(conn, created_at=NOW - timedelta(days=100))
    cleanup.run(db, now=NOW, dry_run=True, skip_registrations=True, trigger="cli")
    shown = hf.cleanup_table(fetch_df(db, "cleanup_history", limit=10))
    assert shown["events_archived"].tolist() == [1, 0] and shown["dry_run"].all()
    assert hf.cleanup_chart(fetch_df(db, "cleanup_history", limit=10)).layout.annotations[0].text == \
        "No cleanup has run for real yet"


def test_cleanup_chart_has_one_bar_group_per_real_run():
    runs = pd.DataFrame({"id": [3, 2, 1], "dry_run": [False, True, False],
                         "started_at": [NOW, NOW - timedelta(hours=1), NOW - timedelta(days=9)],
                         "events_archived": [10, 0, 500], "registrations_archived": [1, 0, 2]})
    fig = hf.cleanup_chart(runs)
    events = next(trace for trace in fig.data if trace.name == "webhook events")
    assert list(events.y) == [500, 10] and [label.split("#")[1] for label in events.x] == ["1", "3"]


def test_an_old_snapshot_gives_one_message_instead_of_three_empty_charts(db):
    health_snapshot.run(db, now=NOW - timedelta(days=3), trigger="cli")
    at = page()
    assert any("No health snapshot in the last 24h" in el.value for el in at.info)
    charts = {json.loads(el.proto.spec)["layout"]["title"]["text"] for el in at.get("plotly_chart")}
    assert not charts & {"Database size", "Size by table (with indexes)", "Rows by table (PostgreSQL's estimate)"}


def test_size_chart_spans_the_window_and_marks_a_lone_snapshot():
    window = (NOW - timedelta(hours=24), NOW)
    lone = growth_frame()[lambda f: f["taken_at"] == f["taken_at"].max()]
    fig = hf.table_size_chart(lone, x_range=window)
    assert {trace.mode for trace in fig.data} == {"lines+markers"}
    start, end = (pd.Timestamp(t).tz_localize(None) for t in window)
    pad = (end - start) / 50
    assert [pd.Timestamp(v) for v in fig.layout.xaxis.range] == [start - pad, end + pad]
    assert {trace.mode for trace in hf.table_size_chart(growth_frame()).data} == {"lines"}


def test_tables_speak_words_not_column_values():
    summary = pd.DataFrame([{"job": "reconcile", "last_status": "needs_review", "last_run_at": NOW,
                             "last_success_at": NOW, "last_failure_at": None, "last_duration_ms": 1500,
                             "avg_duration_ms": 1500, "runs": 1, "failures": 0, "last_error": None}])
    assert hf.job_table(summary)["last_status"].tolist() == ["needs review"]
    # No grey "None" cells: a job that never failed says "never", with no error text.
    [row] = hf.job_table(summary).to_dict("records")
    assert (row["last_failure_at"], row["last_error"]) == ("never", "")
    assert row["last_success_at"] == f"{NOW:%Y-%m-%d %H:%M}"
    runs = pd.DataFrame([{"id": 1, "job": "reconcile", "status": "needs_review", "trigger": "cli",
                          "started_at": NOW, "finished_at": NOW, "duration_ms": 2500, "host": "h",
                          "error": None, "summary": {}}])
    shown = hf.job_runs_table(runs)
    assert shown[["status", "duration_s"]].to_dict("records") == [{"status": "needs review", "duration_s": 2.5}]
    assert "summary" not in shown.columns


def test_archived_registrations_table_shows_the_amount_in_units():
    registration_id = str(uuid.uuid4())  # the query returns it as text
    removed = pd.DataFrame([{"id": registration_id, "email": "a@example.com", "amount_total": 19900,
                             "currency": "eur", "created_at": NOW, "archived_at": NOW,
                             "archive_reason": "session_expired", "stripe_checkout_session_id": "cs_1",
                             "stripe_session_status": "expired", "stripe_payment_status": "unpaid",
                             "cleanup_run_id": 4}])
    row = hf.archived_registrations_table(removed).iloc[0]
    assert row["id"] == registration_id and row["amount"] == "199.00 EUR"
    assert row["archive_reason"] == "session expired" and row["stripe_status"] == "expired / unpaid"


def test_the_page_lists_stripes_webhook_endpoints_and_says_when_the_apps_is_disabled(db):
    from jobs.replay import stripe_endpoints
    from local_stripe import webhook_endpoint

    class Listed:
        def iter_webhook_endpoints(self):
            return iter([webhook_endpoint("https://app.example.com/hook", status="disabled"),
                         webhook_endpoint("https://other.example.com/hook", enabled_events=["invoice.paid"])])

    at = page()
    assert any("Not read yet" in el.value for el in at.info)
    stripe_endpoints.check(db, Listed(), now=NOW, needed=["checkout.session.completed"],
                           endpoint_url="https://app.example.com/hook")
    at = page()
    assert not at.exception, at.exception
    assert any("Stripe has disabled " + markdown_literal("https://app.example.com/hook") in el.value
               for el in at.error)
    [table] = [df.value for df in at.dataframe if "app_endpoint" in df.value.columns]
    assert table["url"].tolist() == ["https://app.example.com/hook", "https://other.example.com/hook"]
    assert table["missing_events"].tolist() == ["", "checkout.session.completed"]


def test_the_schedule_section_says_when_the_scheduler_is_not_running(db):
    from jobs import heartbeats

    at = page()
    assert any("`schedule` is not running" in el.value.replace("\\", "") for el in at.warning)
    with db.begin() as conn:
        heartbeats.beat(conn, "schedule", now=datetime.now(timezone.utc))
    at = page()
    assert not any("is not running" in el.value.replace("\\", "") for el in at.warning)
