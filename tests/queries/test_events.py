"""The events explorer's queries on a hand-built dataset: filters, search, pagination, detail."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from queries import fetch_df, fetch_one
from tests.support.factories import add_event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
WINDOW = {"start": T0, "end": T0 + timedelta(hours=6)}
NO_FILTER = {"statuses": [], "event_types": [], "search": None}


@pytest.fixture
def events(db):
    """Seven events in the window (ids say what they are), one before it."""
    rows = [
        # (minute, id, status, type, error)
        (10, "evt_ok_1", "completed", "checkout.session.completed", None),
        (20, "evt_ok_2", "completed", "checkout.session.expired", None),
        (30, "evt_fail_pct", "failed", "checkout.session.completed", "discount 100% off_by one"),
        (40, "evt_fail_quote", "failed", "checkout.session.completed", "name O'Brien rejected"),
        (50, "evt_fail_drop", "failed", "payment_intent.succeeded", "'; drop table webhook_events; --"),
        (60, "evt_emoji", "processing", "checkout.session.completed", "retrying 🚀 soon"),
        (70, "evt_Back\\slash", "pending", "checkout.session.completed", None),
    ]
    with db.begin() as conn:
        for minute, event_id, status, event_type, error in rows:
            add_event(conn, created_at=T0 + timedelta(minutes=minute), event_id=event_id, status=status,
                      event_type=event_type, error=error, duration_ms=100 if status in ("completed", "failed") else None)
        add_event(conn, created_at=T0 - timedelta(minutes=1), event_id="evt_before_window", status="failed",
                  error="discount 100% off_by one")
    return db


def ids(bind, **filters):
    df = fetch_df(bind, "events_page", **WINDOW, **{**NO_FILTER, **filters}, limit=100, offset=0)
    count = fetch_one(bind, "events_count", **WINDOW, **{**NO_FILTER, **filters})["events"]
    assert count == len(df), "events_count disagrees with the rows events_page returns"
    return list(df["stripe_event_id"])


def test_no_filter_lists_the_window_newest_first(events):
    assert ids(events) == ["evt_Back\\slash", "evt_emoji", "evt_fail_drop", "evt_fail_quote",
                           "evt_fail_pct", "evt_ok_2", "evt_ok_1"]


def test_status_and_type_filters(events):
    assert ids(events, statuses=["failed"]) == ["evt_fail_drop", "evt_fail_quote", "evt_fail_pct"]
    assert ids(events, statuses=["failed", "pending"], event_types=["checkout.session.completed"]) == [
        "evt_Back\\slash", "evt_fail_quote", "evt_fail_pct"]
    assert ids(events, event_types=["checkout.session.expired"]) == ["evt_ok_2"]


@pytest.mark.parametrize("search, expected", [
    ("evt_ok", ["evt_ok_2", "evt_ok_1"]),          # part of an event id
    ("EVT_OK_1", ["evt_ok_1"]),                      # case-insensitive
    ("REJECTED", ["evt_fail_quote"]),                # part of an error message
    ("%", ["evt_fail_pct"]),                         # LIKE wildcards are plain characters
    ("_", ["evt_Back\\slash", "evt_emoji", "evt_fail_drop", "evt_fail_quote", "evt_fail_pct",
           "evt_ok_2", "evt_ok_1"]),                 # every id has an underscore
    ("off_by", ["evt_fail_pct"]),
    ("100%", ["evt_fail_pct"]),
    ("o'brien", ["evt_fail_quote"]),                 # quotes
    ("'; drop table webhook_events; --", ["evt_fail_drop"]),
    ("\\", ["evt_Back\\slash"]),                     # backslash, LIKE's default escape
    ("🚀", ["evt_emoji"]),
    ("x" * 10_000, []),
    ("nothing like this", []),
])
def test_search_matches_literally(events, search, expected):
    assert ids(events, search=search) == expected


def test_hostile_search_changes_nothing(events):
    ids(events, search="'; drop table webhook_events; --")
    with events.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 8


def test_pages_do_not_overlap_and_cover_everything(events):
    pages = [list(fetch_df(events, "events_page", **WINDOW, **NO_FILTER, limit=3, offset=offset)["stripe_event_id"])
             for offset in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert sum(pages, []) == ids(events)


def test_event_detail(events):
    detail = fetch_one(events, "event_detail", stripe_event_id="evt_fail_quote")
    assert detail["processing_status"] == "failed"
    assert detail["error_message"] == "name O'Brien rejected"
    assert detail["processing_duration_ms"] == 100
    assert detail["payload"]["id"] == "evt_fail_quote"  # jsonb comes back as a dict
    assert fetch_one(events, "event_detail", stripe_event_id="evt_missing") is None


def test_queries_run_on_an_empty_database(dashboard_engine):
    assert ids(dashboard_engine) == []
    assert ids(dashboard_engine, search="%", statuses=["failed"]) == []
