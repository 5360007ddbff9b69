"""The Errors page: its queries on attempts written by the real tracking functions, its figure
builders, and Retry now end to end (AppTest -> gateway -> python -m jobs retry -> receiver)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from dashboard.views.errors import figures as ef
from local_stripe.objects import checkout_session_event
from queries import fetch_df
from tests.support.apptest import open_dashboard
from tests.tracking.test_receiver import SECRET, ServerThread, event_row
from tracking.receiver import WEBHOOK_PATH, Receiver
from tracking.tracker import EventTracker


def window() -> dict:
    now = datetime.now(timezone.utc)
    return {"start": now - timedelta(hours=1), "end": now + timedelta(minutes=1)}


def fail(tracker: EventTracker, event: dict, exc: BaseException) -> None:
    claim = tracker.begin(event)
    assert tracker.fail(claim, exc)


@pytest.fixture
def history(db):
    """Three groups: a network error recovered on retry, a timeout still failing with a retry
    planned (two failed attempts), a validation error that needs a person."""
    tracker = EventTracker(db)
    recovered = checkout_session_event("payment_intent.created")
    fail(tracker, recovered, ConnectionResetError("connection reset by peer for evt_1AbC123456"))
    with tracker.track(recovered) as attempt:
        attempt.outcome = "ignored"
    retrying = checkout_session_event("payment_intent.created")
    fail(tracker, retrying, TimeoutError("mailer timed out after 3012 ms"))
    fail(tracker, retrying, TimeoutError("mailer timed out after 95 ms"))
    person = checkout_session_event("checkout.session.completed")
    fail(tracker, person, KeyError("payment_status"))
    return {"db": db, "recovered": recovered["id"], "retrying": retrying["id"], "person": person["id"]}


def test_error_groups_count_attempts_with_recovered_ones_and_what_happens_next(history):
    groups = fetch_df(history["db"], "error_groups", **window(), limit=10).set_index("category")
    assert set(groups.index) == {"network", "validation"}
    network = groups.loc["network"]
    # Two fingerprints of category network: the recovered reset and the still-failing timeout.
    assert len(network) == 2
    reset = network[network["fingerprint"].str.contains("reset")].iloc[0]
    assert (reset["failed_attempts"], reset["events"], reset["recovered"], reset["still_failing"]) == (1, 1, 1, 0)
    timeout = network[network["fingerprint"].str.contains("timed out")].iloc[0]
    assert timeout["fingerprint"] == "TimeoutError: mailer timed out after <n> ms"
    assert (timeout["failed_attempts"], timeout["events"], timeout["still_failing"], timeout["needs_person"]) == (2, 1, 1, 0)
    assert timeout["next_retry_at"] is not None and timeout["recovery_action"] == "retry_with_backoff"
    person = groups.loc["validation"]
    assert (person["needs_person"], person["recovery_action"]) == (1, "fix_and_retry")

    table = ef.error_groups_table(groups.reset_index(), now=datetime.now(timezone.utc)).set_index("fingerprint")
    assert table.loc[reset["fingerprint"], "next"] == "recovered"
    assert table.loc[timeout["fingerprint"], "next"].startswith("next retry ")
    assert table.loc[person["fingerprint"], "next"] == "needs a person"
    assert table.loc[person["fingerprint"], "recovery_action"].startswith("needs a person: fix the app")


def test_failures_by_category_count_every_failed_attempt(history):
    rows = fetch_df(history["db"], "failed_attempts_by_bucket_and_category", **window(), bucket="hour")
    assert rows.groupby("category")["failed"].sum().to_dict() == {"network": 3, "validation": 1}
    fig = ef.failures_by_category_chart(rows, bucket="hour")
    assert [trace.name for trace in fig.data] == ["network", "validation"]  # the policy's order
    assert ef.failures_by_category_chart(rows.iloc[0:0]).layout.annotations  # an empty state, not a blank chart


def test_failure_plan_and_attempt_history(history):
    plan = ef.plan_summary(fetch_df(history["db"], "failure_plan"))
    assert plan == {"retry_planned": 1, "needs_person": 1}
    attempts = fetch_df(history["db"], "event_attempts", stripe_event_id=history["recovered"])
    assert list(attempts["outcome"]) == ["failed", "completed"]
    assert attempts["error_message"].iloc[0].startswith("ConnectionResetError")


def test_the_queries_run_for_the_read_only_dashboard_role(dashboard_engine):
    for name, extra in (("error_groups", {"limit": 5}), ("failed_attempts_by_bucket_and_category", {"bucket": "day"}),
                        ("error_group_failing_events", {"fingerprint": "x", "limit": 5})):
        assert fetch_df(dashboard_engine, name, **window(), **extra).empty
    assert fetch_df(dashboard_engine, "failure_plan").empty


def test_events_failed_before_attempts_were_kept_still_show(db):
    from tests.support.factories import add_event

    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        add_event(conn, created_at=now - timedelta(minutes=5), status="failed", error="legacy boom 42",
                  error_category="unknown", duration_ms=10)
    groups = fetch_df(db, "error_groups", **window(), limit=10)
    assert list(groups["fingerprint"]) == ["legacy boom <n>"] and groups["still_failing"].iloc[0] == 1


# --- the page ------------------------------------------------------------------------------------

@pytest.fixture
def receiver_url(engine, monkeypatch):
    with ServerThread(Receiver(engine=engine, webhook_secret=SECRET)) as server:
        monkeypatch.setenv("MONITOR_REPLAY_URL", f"http://127.0.0.1:{server.port}{WEBHOOK_PATH}")
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("MONITOR_AUTH", "none")
        yield server


def test_retry_now_plans_first_then_redelivers_a_group_in_the_background(history, receiver_url, login_off):
    db = history["db"]
    at = open_dashboard("views/errors/page.py")  # through the app: login (off, local) gives the identity
    assert not at.exception, at.exception
    # Nothing is offered for retry before a group is chosen.
    assert at.selectbox(key="retry_group").value is None
    assert not [b for b in at.button if b.key == "retry_plan_button"]
    assert "Error groups" in [h.value for h in at.subheader]
    groups = next(el.value for el in at.dataframe if "next" in el.value.columns)
    assert "needs a person" in set(groups["next"])
    timeout_group = next(fp for fp in groups["fingerprint"] if "timed out" in fp)
    at.selectbox(key="retry_group").set_value(timeout_group).run()
    at.button(key="retry_plan_button").click().run()
    assert any("Re-deliver **1** failed event(s)" in w.value for w in at.warning)
    assert event_row(db, history["retrying"])["processing_status"] == "failed"  # planned, not done
    at.button(key="retry_confirmed").click().run()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "retry_result" not in at.session_state:
        time.sleep(0.2)
        at.run()
    assert not at.exception, at.exception
    assert any("Re-delivered 1 of 1" in s.value for s in at.success), [e.value for e in at.error]
    assert event_row(db, history["retrying"])["processing_status"] == "completed"
    assert event_row(db, history["person"])["processing_status"] == "failed"  # another group: untouched
    with db.connect() as conn:
        run = conn.execute(sa.text("SELECT trigger, status FROM job_runs WHERE job = 'retry'")).one()
    assert tuple(run) == ("dashboard", "needs_review")  # the validation failure still needs a person


def test_a_large_group_lists_a_few_events_one_by_one_and_plans_the_whole_group(db, receiver_url, login_off):
    """The Event box offers the oldest EVENT_CHOICES events, not the whole group (its options
    go to the browser on every render); Retry now for all of it still plans every event."""
    from dashboard.views.errors.page import EVENT_CHOICES
    from tests.support.factories import add_event

    now = datetime.now(timezone.utc)
    size = EVENT_CHOICES + 12
    with db.begin() as conn:
        for i in range(size):
            add_event(conn, created_at=now - timedelta(minutes=30, seconds=-i), status="failed",
                      error=f"ledger locked for {1000 + i} ms", error_category="database", duration_ms=10)
    at = open_dashboard("views/errors/page.py")
    assert not at.exception, at.exception
    at.selectbox(key="retry_group").set_value("ledger locked for <n> ms").run()
    assert len(at.selectbox(key="retry_event").options) == 1 + EVENT_CHOICES
    at.button(key="retry_plan_button").click().run()
    assert not at.exception, at.exception
    assert any(f"Re-deliver **{size}** failed event(s)" in w.value and f"database {size}" in w.value
               for w in at.warning), [w.value for w in at.warning]
    # One event of the group: the plan is that event alone.
    at.button(key="retry_cancelled").click().run()
    oldest = at.selectbox(key="retry_event").options[1]
    at.selectbox(key="retry_event").set_value(oldest).run()
    at.button(key="retry_plan_button").click().run()
    assert any("Re-deliver **1** failed event(s) to MONITOR_REPLAY_URL as Stripe would (database 1)" in w.value
               for w in at.warning), [w.value for w in at.warning]
    # Another choice after planning: the plan made for the first is not offered for it.
    at.selectbox(key="retry_event").set_value(at.selectbox(key="retry_event").options[2]).run()
    assert not any("Re-deliver" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not [b for b in at.button if b.key == "retry_confirmed"]


def test_next_step_words():
    row = pd.Series({"still_failing": 2, "recovered": 0, "needs_person": 2, "next_retry_at": None})
    assert ef.next_step(row) == "needs a person"
    row = pd.Series({"still_failing": 3, "recovered": 1, "needs_person": 1,
                     "next_retry_at": pd.Timestamp("2026-01-01 10:00", tz="UTC")})
    assert ef.next_step(row) == "next retry 2026-01-01 10:00 UTC; 1 needs a person"
    assert ef.next_step(row, now=datetime(2026, 1, 2, tzinfo=timezone.utc)).startswith("retry due now")


def test_the_event_detail_shows_category_recovery_action_and_retry_history(history, login_off):
    at = open_dashboard("views/events/page.py")
    at.text_input(key="events_search").input(history["person"]).run()
    at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Event detail")).select(history["person"]).run()
    assert not at.exception, at.exception
    assert any("Category validation" in c.value and "no automatic retry planned" in c.value for c in at.caption)
    assert any("Recovery action: needs a person: fix the app" in t.value for t in at.text)
    attempts = next(el.value for el in at.dataframe if "source" in el.value.columns)
    assert list(attempts["outcome"]) == ["failed"] and list(attempts["error_category"]) == ["validation"]


def test_without_a_replay_url_retry_now_says_what_to_set(history, login_off, monkeypatch):
    monkeypatch.delenv("MONITOR_REPLAY_URL", raising=False)
    at = open_dashboard("views/errors/page.py")
    assert any("set MONITOR_REPLAY_URL" in w.value for w in at.warning)
    at.selectbox(key="retry_group").set_value("TimeoutError: mailer timed out after <n> ms").run()
    assert at.button(key="retry_plan_button").disabled


def test_failures_without_a_message_are_one_group_and_each_groups_failing_events_are_found(db):
    """The fingerprints written with each failure: failed events without a message or with only
    whitespace group as 'unspecified error'; a group's failing events are found whether the
    failure is an attempt or an event failed before attempts were kept."""
    from tests.support.factories import add_event

    tracker = EventTracker(db)
    tracked = checkout_session_event("payment_intent.created")
    fail(tracker, tracked, RuntimeError("boom 17"))
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        silent = {add_event(conn, created_at=now - timedelta(minutes=5), status="failed", error=error,
                            error_category="unknown", duration_ms=10) for error in (None, "  ")}
        legacy = add_event(conn, created_at=now - timedelta(minutes=4), status="failed", error="RuntimeError: boom 3",
                           error_category="unknown", duration_ms=10)
    groups = fetch_df(db, "error_groups", **window(), limit=10).set_index("fingerprint")
    assert groups.loc["unspecified error", "events"] == 2
    assert groups.loc["RuntimeError: boom <n>", "events"] == 2
    def failing(fingerprint):
        return set(fetch_df(db, "error_group_failing_events", **window(), fingerprint=fingerprint,
                            limit=10)["stripe_event_id"])
    assert failing("unspecified error") == silent
    assert failing("RuntimeError: boom <n>") == {tracked["id"], legacy}
    assert failing("no such error") == set()
