"""The overview queries on a hand-built dataset whose answers are written out here."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from queries import fetch_df, fetch_one
from tests.support.factories import add_event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)  # window start
WINDOW = {"start": T0, "end": T0 + timedelta(hours=3)}


@pytest.fixture
def tiny(db):
    """Three hours of events, 10:00-13:00 UTC, plus one before and one after the window."""
    with db.begin() as conn:
        for minute, duration in [(5, 100), (10, 200), (20, 300), (30, 400)]:
            add_event(conn, created_at=T0 + timedelta(minutes=minute), duration_ms=duration)
        add_event(conn, created_at=T0 + timedelta(minutes=40), status="failed", duration_ms=50,
                  error="timeout", event_type="checkout.session.expired")
        # hour 11 is silent; hour 12 has one completed, one failed, one stuck, one fresh processing
        add_event(conn, created_at=T0 + timedelta(hours=2, minutes=1), duration_ms=1000)
        add_event(conn, created_at=T0 + timedelta(hours=2, minutes=2), status="failed", duration_ms=10,
                  event_type="checkout.session.expired")
        add_event(conn, created_at=T0 + timedelta(hours=2, minutes=3), status="processing")
        add_event(conn, created_at=T0 + timedelta(hours=2, minutes=55), status="processing")
        add_event(conn, created_at=T0 - timedelta(minutes=1), status="failed", duration_ms=5)
        add_event(conn, created_at=T0 + timedelta(hours=3), duration_ms=5)  # end is exclusive
    return db


def test_event_kpis_on_tiny_dataset(tiny):
    kpis = fetch_one(tiny, "event_kpis", **WINDOW, stuck_before=T0 + timedelta(hours=2, minutes=30))
    assert kpis["events_received"] == 9
    assert (kpis["completed"], kpis["failed"], kpis["processing"], kpis["pending"]) == (5, 2, 2, 0)
    assert kpis["stuck"] == 1
    assert float(kpis["success_rate"]) == pytest.approx(5 / 7, abs=1e-4)
    # completed durations 100, 200, 300, 400, 1000: p95 by linear interpolation = 400 + 0.8 * 600
    assert kpis["p95_duration_ms"] == pytest.approx(880.0)
    assert kpis["last_event_at"] == T0 + timedelta(hours=3)


def test_events_by_bucket_counts_per_hour_with_empty_hours(tiny):
    df = fetch_df(tiny, "events_by_bucket", **WINDOW, bucket="hour")
    expected = pd.DataFrame({
        "completed": [4, 0, 1], "failed": [1, 0, 1], "processing": [0, 0, 2], "pending": [0, 0, 0],
    })
    assert [b.hour for b in df["bucket"]] == [10, 11, 12]
    pd.testing.assert_frame_equal(df.drop(columns="bucket").astype("int64"), expected.astype("int64"))


def test_events_by_bucket_by_day(tiny):
    df = fetch_df(tiny, "events_by_bucket", start=T0 - timedelta(days=1), end=T0 + timedelta(days=1), bucket="day")
    assert len(df) == 3  # 19th (partial), 20th, 21st (partial)
    by_day = {row.bucket.day: (row.completed, row.failed, row.processing) for row in df.itertuples()}
    assert by_day == {19: (0, 0, 0), 20: (6, 3, 2), 21: (0, 0, 0)}


def test_event_types(tiny):
    df = fetch_df(tiny, "event_types", **WINDOW)
    rows = {r.event_type: (r.events, r.failed, r.completed) for r in df.itertuples()}
    assert rows == {"checkout.session.completed": (7, 0, 5), "checkout.session.expired": (2, 2, 0)}


@pytest.mark.parametrize("name, extra", [
    ("event_kpis", {"stuck_before": T0}),
    ("events_by_bucket", {"bucket": "hour"}),
    ("event_types", {}),
])
def test_queries_run_on_an_empty_database(dashboard_engine, name, extra):
    df = fetch_df(dashboard_engine, name, **WINDOW, **extra)
    if name == "event_kpis":
        assert df.loc[0, "events_received"] == 0 and pd.isna(df.loc[0, "success_rate"])
    elif name == "events_by_bucket":
        assert len(df) == 3 and df.drop(columns="bucket").to_numpy().sum() == 0
    else:
        assert df.empty


def test_event_gaps_median_between_consecutive_events(tiny):
    # Events at 10:05, 10:10, 10:20, 10:30, 10:40, 12:01, 12:02, 12:03, 12:55 (the ones at
    # 09:59 and 13:00 are outside): gaps 5, 10, 10, 10, 81, 1, 1, 52 minutes -> median 10 min.
    gaps = fetch_one(tiny, "event_gaps", **WINDOW)
    assert gaps["gaps"] == 8
    assert gaps["median_gap_seconds"] == pytest.approx(600.0)


def test_event_gaps_on_an_empty_database(dashboard_engine):
    gaps = fetch_one(dashboard_engine, "event_gaps", **WINDOW)
    assert gaps["gaps"] == 0 and gaps["median_gap_seconds"] is None
