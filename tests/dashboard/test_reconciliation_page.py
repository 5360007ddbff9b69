"""The Reconciliation page under Streamlit's AppTest, on a real database and local Stripe."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import auth
from dashboard.components.text import markdown_literal
from dashboard.views.reconciliation import figures as rf
from jobs.reconcile import reconciler as reconcile
from jobs.runtime import job_lock
from jobs.stripe_gateway import gateway_from_settings
from tests.support.factories import add_registration

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "reconciliation" / "page.py")


@pytest.fixture(autouse=True)
def fresh_cache():
    # Cached query results live in the process, across AppTest instances and tests.
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def page(identity: str | None = "ana@example.com") -> AppTest:
    """The page as a session logged in as ``identity`` (what the entry script's login sets)."""
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.user = {"is_logged_in": True, "email": "ana@example.com"}
    if identity is not None:
        at.session_state[auth.IDENTITY_KEY] = identity
    return at


def seed_mismatches(db, stripe_server, now):
    """A pending row to fix, a failed one and a completed-but-expired one to review."""
    rows = {}
    for name, status, session_status in (("fix", "pending", "complete"), ("failed", "failed", "complete"),
                                         ("unpaid", "completed", "expired")):
        reg_id = str(uuid.uuid4())
        with db.begin() as conn:
            add_registration(conn, registration_id=reg_id, session_id=f"cs_test_page_{name}", status=status,
                             created_at=now - timedelta(days=1))
        stripe_server.add_session(id=f"cs_test_page_{name}", created=int(now.timestamp()) - 3600,
                                  client_reference_id=reg_id, status=session_status)
        rows[name] = reg_id
    return rows


def values(array) -> list:
    """A trace's array from the chart's JSON: plain, or packed by plotly as base64 ("bdata")."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def metric_values(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_empty_database(db, stripe_server):
    at = page().run()
    assert not at.exception
    assert any("No reconciliation has run yet" in i.value for i in at.info)
    # An empty queue before any run is not good news: it says nothing has been checked.
    assert any("nothing has been checked yet" in i.value for i in at.info)
    assert not any("Nothing needs a person" in s.value for s in at.success)
    [chart] = at.get("plotly_chart")
    assert rf.NO_RUNS in json.dumps(json.loads(chart.proto.spec)["layout"])


def test_last_run_queue_history_and_resolve(db, stripe_server):
    now = datetime.now(timezone.utc)
    seed_mismatches(db, stripe_server, now)
    report = reconcile.run(db, now=now, gateway=gateway_from_settings(), trigger="cli")

    at = page().run()
    assert not at.exception
    assert metric_values(at) == {"Stripe payments": "2", "Local registrations": "3", "Mismatches": "3",
                                 "Auto-fixed": "1", "Need a person": "2"}
    assert any(f"Run #{report.run_id}" in c.value for c in at.caption)
    queue = at.dataframe[0].value
    assert sorted(queue["kind"]) == ["completed, not paid", "paid, but failed locally"]
    assert queue.iloc[0]["severity"] == "critical"  # critical first
    [chart] = at.get("plotly_chart")
    traces = json.loads(chart.proto.spec)["data"]
    assert {t["name"]: int(sum(values(t["y"]))) for t in traces} == {"auto-fixed": 1, "need a person": 2}

    picker = at.selectbox(key="reconciliation_item")
    failed_label = next(i for i in picker.options if "failed locally" in i)
    picker.set_value(int(failed_label.split()[0].lstrip("#"))).run()
    facts = at.dataframe[1].value
    assert facts.set_index("field").loc["status"].to_dict() == {"Stripe": "complete / paid", "local": "failed"}

    at.text_area[0].input("refunded the customer")
    assert not at.text_input  # no free-text name: the logged-in identity is recorded
    assert any(markdown_literal("ana@example.com") in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Resolve").click().run()
    assert not at.exception
    assert any(f"resolved by {markdown_literal('ana@example.com')}" in s.value for s in at.success)
    with db.connect() as conn:
        resolved = conn.execute(sa.text("""SELECT kind, resolved_by, resolution_note FROM reconciliation_items
                                           WHERE resolved_at IS NOT NULL AND action = 'manual_review'""")).all()
    assert [tuple(r) for r in resolved] == [("paid_but_failed", "ana@example.com", "refunded the customer")]
    assert len(at.dataframe[0].value) == 1


def test_resolve_without_a_note_says_so(db, stripe_server):
    now = datetime.now(timezone.utc)
    seed_mismatches(db, stripe_server, now)
    reconcile.run(db, now=now, gateway=gateway_from_settings(), trigger="cli")
    at = page().run()
    next(b for b in at.button if b.label == "Resolve").click().run()
    assert any("needs a note" in e.value for e in at.error)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconciliation_items WHERE resolved_by = 'ana@example.com'")).scalar() == 0


def test_resolving_needs_a_logged_in_identity(db, stripe_server):
    now = datetime.now(timezone.utc)
    seed_mismatches(db, stripe_server, now)
    reconcile.run(db, now=now, gateway=gateway_from_settings(), trigger="cli")
    at = page(identity=None).run()
    at.text_area[0].input("refunded the customer")
    next(b for b in at.button if b.label == "Resolve").click().run()
    assert any("Log in to change anything" in e.value for e in at.error)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconciliation_items WHERE resolved_at IS NOT NULL "
                                    "AND action = 'manual_review'")).scalar() == 0


def test_run_now_runs_and_shows_the_report(db, stripe_server):
    now = datetime.now(timezone.utc)
    rows = seed_mismatches(db, stripe_server, now)
    at = page().run()
    at.number_input[0].set_value(3)
    next(b for b in at.button if b.label == "Run now").click().run()
    assert not at.exception

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("finished" in s.value for s in at.success):
        time.sleep(0.5)
        at.run()
    assert not at.exception
    finished = [s.value for s in at.success if "finished" in s.value]
    assert finished, [e.value for e in at.error]
    with db.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM reconciliation_runs")).mappings().one()
        status = conn.execute(sa.text("SELECT processing_status FROM registrations WHERE id = :id"),
                              {"id": rows["fix"]}).scalar()
    assert run["trigger"] == "dashboard" and run["lookback_days"] == 3 and run["status"] == "completed"
    assert status == "completed"
    assert f"Run #{run['id']} finished" in finished[0]
    assert any("Items need a person" in w.value for w in at.warning)
    kinds = at.dataframe[0].value
    assert isinstance(kinds, pd.DataFrame) and set(kinds["action"]) == {"auto-fixed", "needs a person"}
    # The run's five numbers are shown once, at the top: it is the last run.
    assert [m.label for m in at.metric].count("Need a person") == 1


def test_a_dry_run_says_it_queued_nothing(db, stripe_server):
    now = datetime.now(timezone.utc)
    seed_mismatches(db, stripe_server, now)
    at = page().run()
    at.checkbox[0].check()
    next(b for b in at.button if b.label == "Run now").click().run()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("finished" in s.value for s in at.success):
        time.sleep(0.5)
        at.run()
    assert not at.exception
    assert any("dry run, nothing changed" in s.value for s in at.success)
    assert any("this dry run queued nothing" in i.value for i in at.info)
    assert not any("Items need a person" in w.value for w in at.warning)
    assert any("Nothing needs a person" in s.value for s in at.success)  # the queue is indeed empty


def test_a_run_in_progress_is_shown_instead_of_the_form(db, stripe_server):
    with job_lock(db, "reconcile"):
        at = page().run()
    assert not at.exception
    assert any("already in progress" in w.value for w in at.warning)
    assert not any(b.label == "Run now" for b in at.button)


def test_without_a_stripe_key_run_now_is_disabled(db, stripe_server, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY")
    at = page().run()
    assert any("STRIPE_API_KEY is not set" in i.value for i in at.info)
    assert next(b for b in at.button if b.label == "Run now").disabled


@pytest.mark.parametrize("details, expected", [
    ({"stripe": {"id": "cs_1", "status": "complete", "payment_status": "paid", "amount_total": 2500,
                 "currency": "eur", "created": 1_735_689_600}, "local": None},
     {"amount": ("25.00 EUR", "(no registration)"), "created": ("2025-01-01 00:00 UTC", "(no registration)")}),
    ({"stripe": None, "local": {"registration_id": "r1", "processing_status": "completed",
                                "amount_total": 1000, "currency": "usd"}},
     {"status": ("(no session)", "completed"), "amount": ("(no session)", "10.00 USD")}),
    # Local timestamps are stored as ISO text; shown like Stripe's, in UTC to the minute.
    ({"stripe": {"id": "cs_2", "amount_total": 500, "currency": "jpy", "created": 1_735_689_600},
      "local": {"registration_id": "r2", "amount_total": 500, "currency": "jpy",
                "created_at": "2025-01-01T01:30:59.123456+01:00", "completed_at": None}},
     {"created": ("2025-01-01 00:00 UTC", "2025-01-01 00:30 UTC"), "amount": ("500 JPY", "500 JPY"),
      "payment intent / completed at": ("–", "–")}),
])
def test_facts_table(details, expected):
    table = rf.facts_table(details).set_index("field")
    for field, (stripe, local) in expected.items():
        assert (table.loc[field, "Stripe"], table.loc[field, "local"]) == (stripe, local)


def test_history_chart_marks_failed_runs():
    history = pd.DataFrame([
        {"id": 1, "status": "completed", "dry_run": False, "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
         "auto_fixed_count": 2, "manual_review_needed": 1, "error": None},
        {"id": 2, "status": "failed", "dry_run": False, "started_at": pd.Timestamp("2025-01-02", tz="UTC"),
         "auto_fixed_count": 0, "manual_review_needed": 0, "error": "cannot reach Stripe"},
    ])
    fig = rf.run_history_chart(history)
    names = [trace.name for trace in fig.data]
    assert names == ["auto-fixed", "need a person", "failed run"]
    assert list(fig.data[2].customdata[0]) == [2, "cannot reach Stripe"]


def test_history_chart_hatches_dry_runs():
    history = pd.DataFrame([
        {"id": 1, "status": "completed", "dry_run": True, "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
         "auto_fixed_count": 2, "manual_review_needed": 1, "error": None},
        {"id": 2, "status": "completed", "dry_run": False, "started_at": pd.Timestamp("2025-01-02", tz="UTC"),
         "auto_fixed_count": 2, "manual_review_needed": 1, "error": None},
    ])
    traces = {trace.name: trace for trace in rf.run_history_chart(history).data}
    assert list(traces) == ["auto-fixed", "need a person", "auto-fixed (dry run)", "need a person (dry run)"]
    assert list(traces["auto-fixed"].customdata[:, 0]) == [2] and traces["auto-fixed"].marker.pattern.shape == ""
    assert list(traces["auto-fixed (dry run)"].customdata[:, 0]) == [1]
    assert traces["auto-fixed (dry run)"].marker.pattern.shape == "/"


def test_kinds_table_in_words():
    kinds = pd.DataFrame({"kind": ["paid_but_pending", "amount_mismatch"], "action": ["auto_fixed", "manual_review"],
                          "items": [3, 1]})
    assert rf.kinds_table(kinds).to_dict("records") == [
        {"kind": "paid, still pending", "action": "auto-fixed", "items": 3},
        {"kind": "amount differs", "action": "needs a person", "items": 1}]


def test_history_chart_axis_names_runs_to_the_minute():
    # Three runs seconds apart (Run now, clicked again): on a time axis they got ticks like
    # "12:20:24.5915" and bars too thin to see; here each run is one readable bar.
    start = pd.Timestamp("2026-11-30 12:20:24.591", tz="UTC")
    history = pd.DataFrame([
        {"id": 7, "status": "completed", "dry_run": False, "started_at": start + pd.Timedelta(seconds=40),
         "auto_fixed_count": 1, "manual_review_needed": 0, "error": None},
        {"id": 6, "status": "completed", "dry_run": False, "started_at": start,
         "auto_fixed_count": 2, "manual_review_needed": 1, "error": None},
        {"id": 8, "status": "failed", "dry_run": False, "started_at": start + pd.Timedelta(minutes=3),
         "auto_fixed_count": 0, "manual_review_needed": 0, "error": "boom"},
    ])
    fig = rf.run_history_chart(history)
    assert fig.layout.xaxis.type == "category"
    assert list(fig.layout.xaxis.categoryarray) == ["#6 · Nov 30 12:20", "#7 · Nov 30 12:21", "#8 · Nov 30 12:23"]
    assert list(fig.data[0].x) == ["#6 · Nov 30 12:20", "#7 · Nov 30 12:21"]


def test_progress_never_falls_back_to_zero_and_shows_a_total():
    first = rf.progress_counters({"id": 4, "pages_read": 3, "sessions_checked": 250, "stripe_requests": 4,
                                  "mismatches_detected": 2, "expected_sessions": 1000}, None)
    line, done = rf.progress_summary(first)
    assert line.startswith("250 of about 1,000 sessions checked") and done == 0.25
    # The progress row missing for a moment (or a counter read before an update) keeps what was shown.
    again = rf.progress_counters(None, first)
    assert rf.progress_summary(again) == (line, done)
    lower = rf.progress_counters({"id": 4, "pages_read": 0, "sessions_checked": 0, "stripe_requests": 0,
                                  "mismatches_detected": 0, "expected_sessions": 1000}, first)
    assert lower["sessions_checked"] == 250
    # More sessions than last time: the bar stays short of full until the run ends.
    more = rf.progress_counters({"id": 4, "sessions_checked": 1500, "expected_sessions": 1000}, first)
    assert rf.progress_summary(more)[1] == 0.99
    # A new run starts from its own numbers; with no earlier run there is no invented total.
    fresh = rf.progress_counters({"id": 5, "sessions_checked": 1, "pages_read": 1, "stripe_requests": 1,
                                  "mismatches_detected": 1}, first)
    line, done = rf.progress_summary(fresh)
    assert done is None
    assert line == ("1 session checked (no earlier run to estimate the total from); 1 page read, "
                    "1 Stripe request, 1 mismatch so far.")
