"""The events search served by indexes on any server (migrations/functions/search.sql and
the indexes of migrations/0179_baseline.sql):
ids by their beginning, messages by their words, symbols-only searches literally, and the
search's count bounded at 1,000 with the page saying "more than"."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dashboard.views.events import explorer
from queries import fetch_df, fetch_one
from tests.support.apptest import open_dashboard
from tests.support.factories import add_event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
WINDOW = {"start": T0, "end": T0 + timedelta(hours=6)}
NO_FILTER = {"statuses": [], "event_types": []}


@pytest.fixture
def events(db):
    rows = [
        (10, "evt_1NxAbCdEf", "failed", "TimeoutError: mailer timed out after 3012 ms"),
        (20, "evt_1NyZz", "failed", "deadlock detected on row 7 (webhook_events)"),
        (30, "evt_2Qr", "completed", None),
        (40, "evt_3Mailer", "failed", "KeyError: 'payment_status'"),
    ]
    with db.begin() as conn:
        for minute, event_id, status, error in rows:
            add_event(conn, created_at=T0 + timedelta(minutes=minute), event_id=event_id, status=status, error=error)
    return db


def found(bind, search: str) -> list[str]:
    page = fetch_df(bind, "events_page", **WINDOW, **NO_FILTER, search=search, limit=100, offset=0)
    assert fetch_one(bind, "events_count", **WINDOW, **NO_FILTER, search=search)["events"] == len(page)
    return sorted(page["stripe_event_id"])


@pytest.mark.parametrize("search, expected", [
    ("evt_1N", ["evt_1NxAbCdEf", "evt_1NyZz"]),      # ids by their beginning, any case
    ("EVT_1NXABCDEF", ["evt_1NxAbCdEf"]),
    ("1nxab", ["evt_1NxAbCdEf"]),                      # ... with or without its evt_
    ("mailer", ["evt_1NxAbCdEf"]),                     # a word of a message (not evt_3Mailer: not the id's beginning)
    ("Timed Out", ["evt_1NxAbCdEf"]),                  # words in any case
    ("mail", ["evt_1NxAbCdEf"]),                       # the beginning of a word
    ("deadlock detected", ["evt_1NyZz"]),
    ("(webhook_events)", ["evt_1NyZz"]),               # punctuation around words, as typed
    ("'payment_status'", ["evt_3Mailer"]),
    ("detected deadlock", []),                         # the words, but not the text as typed
    ("3012 ms", ["evt_1NxAbCdEf"]),
])
def test_ids_by_their_beginning_and_messages_by_their_words(events, search, expected):
    assert found(events, search) == expected


def test_what_the_search_does_not_find_without_pg_trgm(events):
    """Documented in the README: the middle of a word or of an id is not found when the
    search has a word (only a search of symbols is matched anywhere)."""
    assert found(events, "eadlock") == []
    assert found(events, "NxAbC") == []
    assert found(events, "_") == ["evt_1NxAbCdEf", "evt_1NyZz", "evt_2Qr", "evt_3Mailer"]


def test_the_count_of_a_search_stops_past_ten_thousand(db):
    with db.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                        created_at, error_message, error_category)
            SELECT 'evt_many_' || n, 'charge.succeeded', 'completed', '{}', 2,
                   CAST(:t0 AS timestamptz) + n * interval '1 second', 'deadlock detected on row ' || n, 'database'
            FROM generate_series(1, :n) AS n"""), {"t0": T0, "n": explorer.SEARCH_COUNT_CAP + 50})
    count = fetch_one(db, "events_count", **WINDOW, **NO_FILTER, search="deadlock")["events"]
    assert count == explorer.SEARCH_COUNT_CAP + 1  # "more than 1,000"
    assert fetch_one(db, "events_count", **WINDOW, **NO_FILTER, search=None)["events"] == explorer.SEARCH_COUNT_CAP + 50
    newest = fetch_df(db, "events_page", **WINDOW, **NO_FILTER, search="deadlock", limit=3, offset=0)
    assert list(newest["stripe_event_id"]) == [f"evt_many_{explorer.SEARCH_COUNT_CAP + 50 - i}" for i in range(3)]


def test_the_events_page_says_more_than_ten_thousand(db, login_off):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                        created_at, error_message, error_category)
            SELECT 'evt_many_' || n, 'charge.succeeded', 'completed', '{}', 2,
                   CAST(:now AS timestamptz) - n * interval '1 second', 'deadlock detected on row ' || n, 'database'
            FROM generate_series(1, :n) AS n"""), {"now": now, "n": explorer.SEARCH_COUNT_CAP + 5})
    at = open_dashboard("views/events/page.py")
    at.text_input(key="events_search").input("deadlock").run()
    assert not at.exception, at.exception
    assert any("More than 1,000 events" in c.value and "narrow the search" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == explorer.PAGE_SIZE


def _many_messages(conn, n: int, message_of_row: str) -> None:
    """n failed events one second apart from T0 whose message is ``message_of_row`` with
    ``{n}`` replaced by the row's number (rows without a message every fifth row)."""
    conn.execute(sa.text("""
        INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                    created_at, error_message, error_category)
        SELECT 'evt_msg_' || n, CASE WHEN n % 3 = 0 THEN 'invoice.paid' ELSE 'charge.succeeded' END,
               'failed', '{}', 1, CAST(:t0 AS timestamptz) + n * interval '1 second',
               CASE WHEN n % 5 = 0 THEN NULL ELSE replace(:message, '{n}', CAST(n AS text)) END, 'database'
        FROM generate_series(1, :n) AS n"""), {"t0": T0, "n": n, "message": message_of_row})


def _expected(conn, search_like: str, **filters) -> list[str]:
    """Every event of the window whose message contains the text, newest first (the page's
    definition, computed the slow way)."""
    return list(conn.execute(sa.text("""
        SELECT stripe_event_id FROM webhook_events
        WHERE created_at >= :start AND created_at < :end AND error_message ILIKE :like
          AND (CAST(:types AS text[]) IS NULL OR event_type = ANY (CAST(:types AS text[])))
        ORDER BY created_at DESC, id DESC"""), {**WINDOW, "like": search_like,
                                               "types": filters.get("types")}).scalars())


@pytest.mark.parametrize("limit, offset", [(50, 0), (50, 50), (25, 2400), (100, 2900)])
def test_a_search_pages_the_same_rows_whether_the_newest_messages_hold_them_or_not(db, limit, offset):
    """events_page looks among the window's newest 2,000 messages first, and reads the word
    index's candidates when those do not fill the page: a frequent word (every row), a rare
    one (one row in 97, so the newest 2,000 messages hold about 16 matches) and deep pages
    give the rows of the straightforward definition, in order, without overlap."""
    with db.begin() as conn:
        _many_messages(conn, 3_600, "Deadlock detected on row {n}")
        conn.execute(sa.text("UPDATE webhook_events SET error_message = 'mailer TIMEOUT for ' || stripe_event_id "
                             "WHERE created_at = CAST(:t0 AS timestamptz) + "
                             "(CAST(split_part(stripe_event_id, '_', 3) AS int)) * interval '1 second' "
                             "AND CAST(split_part(stripe_event_id, '_', 3) AS int) % 97 = 1"), {"t0": T0})
        frequent, rare = _expected(conn, "%deadlock%"), _expected(conn, "%timeout%")
        only_invoices = _expected(conn, "%deadlock%", types=["invoice.paid"])
    assert len(frequent) > 2_500 and 30 < len(rare) < 60
    for search, expected, types in [("deadlock", frequent, []), ("Timeout", rare, []),
                                    ("deadlock", only_invoices, ["invoice.paid"])]:
        page = fetch_df(db, "events_page", **WINDOW, statuses=[], event_types=types, search=search,
                        limit=limit, offset=offset)
        assert list(page["stripe_event_id"]) == expected[offset:offset + limit], (search, types)


def test_a_search_still_finds_ids_and_messages_together(db):
    """An event id's beginning and a word of messages in one search: both kinds are listed,
    once each, newest first, across the page boundary."""
    with db.begin() as conn:
        _many_messages(conn, 2_500, "handler failed for evt_msg_{n}")
    page = fetch_df(db, "events_page", **WINDOW, **NO_FILTER, search="evt_msg_24", limit=20, offset=0)
    # ids beginning with evt_msg_24 (evt_msg_24, evt_msg_240..249, evt_msg_2400..2499), and
    # the messages naming them; rows without a message are found by their id only
    expected = [f"evt_msg_{n}" for n in range(2500, 0, -1) if str(n).startswith("24")]
    assert list(page["stripe_event_id"]) == expected[:20]
    assert fetch_one(db, "events_count", **WINDOW, **NO_FILTER, search="evt_msg_24")["events"] == len(expected)


@pytest.mark.parametrize("hostile", ["'; DROP TABLE webhook_events; --", "deadlock%' OR '1'='1",
                                     "\\\\deadlock", "dead_ock", "%deadlock%"])
def test_hostile_searches_stay_text_on_the_walked_page(db, hostile):
    with db.begin() as conn:
        _many_messages(conn, 2_200, "deadlock detected on row {n}")
    page = fetch_df(db, "events_page", **WINDOW, **NO_FILTER, search=hostile, limit=50, offset=0)
    assert page.empty
    assert fetch_one(db, "events_count", **WINDOW, **NO_FILTER, search=hostile)["events"] == 0
