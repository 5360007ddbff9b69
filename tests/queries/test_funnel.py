"""The funnel queries on a hand-built dataset whose answers are written out here."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from queries import fetch_df, fetch_one
from tests.support.factories import add_event, add_registration

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
WINDOW = {"start": T0, "end": T0 + timedelta(days=2)}


def session_event(conn, at, session_id, event_type="checkout.session.completed", payment_status="paid"):
    add_event(conn, created_at=at, event_type=event_type,
              payload={"type": event_type, "data": {"object": {"id": session_id, "payment_status": payment_status}}})


@pytest.fixture
def registrations(db):
    day1, day2 = T0 + timedelta(hours=1), T0 + timedelta(days=1, hours=1)
    minute = timedelta(minutes=1)
    with db.begin() as conn:
        # Day 1: eight registrations.
        add_registration(conn, created_at=day1, email="r1")                                # never reached checkout
        add_registration(conn, created_at=day1 + minute, session_id="cs_1", email="r2")    # checkout, nothing since
        add_registration(conn, created_at=day1 + 2 * minute, session_id="cs_2", email="r3")  # paid, still pending
        session_event(conn, day1 + 3 * minute, "cs_2")
        add_registration(conn, created_at=day1 + 3 * minute, session_id="cs_3", email="r4")  # completed but unpaid
        session_event(conn, day1 + 4 * minute, "cs_3", payment_status="unpaid")
        add_registration(conn, created_at=day1 + 4 * minute, session_id="cs_4", email="r5")  # delayed payment succeeded
        session_event(conn, day1 + 9 * minute, "cs_4", event_type="checkout.session.async_payment_succeeded",
                      payment_status="paid")
        add_registration(conn, created_at=day1 + 5 * minute, session_id="cs_5", email="r6", status="completed",
                         completed_at=day1 + 5 * minute + timedelta(seconds=120))
        add_registration(conn, created_at=day1 + 6 * minute, session_id="cs_6", email="r7", status="completed",
                         completed_at=day1 + 6 * minute + timedelta(seconds=600))
        session_event(conn, day1 + 7 * minute, "cs_6")  # paid and completed: counted once
        add_registration(conn, created_at=day1 + 7 * minute, session_id="cs_7", email="r8")  # wrong event type
        session_event(conn, day1 + 8 * minute, "cs_7", event_type="payment_intent.succeeded")
        # Day 2: three registrations.
        add_registration(conn, created_at=day2, session_id="cs_8", email="r9", status="completed",
                         completed_at=day2 + timedelta(seconds=60))
        add_registration(conn, created_at=day2 + minute, email="r10", status="expired")
        add_registration(conn, created_at=day2 + 2 * minute, email="r11", status="completed",  # free, no checkout
                         completed_at=day2 + 2 * minute + timedelta(seconds=300))
        # Outside the window.
        add_registration(conn, created_at=T0 - timedelta(hours=1), session_id="cs_0", email="r0",
                         status="completed", completed_at=T0)
    return db


def test_funnel_by_day(registrations):
    df = fetch_df(registrations, "funnel_by_bucket", **WINDOW, bucket="day")
    rows = [(r.bucket.day, r.created, r.checkout_started, r.paid, r.completed) for r in df.itertuples()]
    assert rows == [(20, 8, 7, 4, 2), (21, 3, 1, 1, 1)]


def test_completion_times(registrations):
    times = fetch_one(registrations, "completion_times", **WINDOW)
    # completed in the window after 60, 120, 300 and 600 seconds
    assert times["completed"] == 4
    assert times["median_seconds"] == pytest.approx(210.0)
    assert times["p95_seconds"] == pytest.approx(300 + 0.85 * 300)  # linear interpolation at 2.85


def test_stale_pending_registrations_oldest_first_with_total(registrations):
    df = fetch_df(registrations, "stale_pending_registrations", stale_before=T0 + timedelta(days=1), limit=4)
    assert list(df["email"]) == ["r1", "r2", "r3", "r4"]
    assert set(df["total"]) == {6}  # r1, r2, r3, r4, r5, r8
    assert all(isinstance(value, str) for value in df["id"])


@pytest.mark.parametrize("name, params", [
    ("funnel_by_bucket", {**WINDOW, "bucket": "hour"}),
    ("stale_pending_registrations", {"stale_before": T0, "limit": 10}),
])
def test_queries_run_on_an_empty_database(dashboard_engine, name, params):
    assert fetch_df(dashboard_engine, name, **params).empty


def test_completion_times_on_an_empty_database(dashboard_engine):
    times = fetch_one(dashboard_engine, "completion_times", **WINDOW)
    assert times == {"completed": 0, "median_seconds": None, "p95_seconds": None}


def test_stale_pending_total_stops_past_ten_thousand(db, dashboard_engine):
    """Counting every abandoned checkout of a long history grew with it; past 10,000 the
    total says 10,001 and the page "more than 10,000" (dashboard/views/funnel/page.py)."""
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO registrations (email, processing_status, created_at)"
            " SELECT 'p' || n || '@example.com', 'pending', :t - n * interval '1 second'"
            " FROM generate_series(1, 10005) AS n"), {"t": T0})
    capped = fetch_df(dashboard_engine, "stale_pending_registrations", stale_before=T0 + timedelta(days=1), limit=5)
    assert len(capped) == 5 and set(capped["total"]) == {10001}
    exact = fetch_df(dashboard_engine, "stale_pending_registrations",
                     stale_before=T0 - timedelta(seconds=10000), limit=5)
    assert set(exact["total"]) == {5}
