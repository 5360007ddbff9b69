"""Search text, Stripe links and CSV export of the events explorer."""

import io
from datetime import date, datetime, timezone

import pandas as pd
import pytest

from dashboard.components.links import stripe_event_url
from dashboard.views.events.explorer import SEARCH_MAX_CHARS, clean_search, csv_bytes, listing_key, page_count, rows_key
from dashboard.window import resolve_window


@pytest.mark.parametrize("typed, searched", [
    (None, None), ("", None), ("   ", None), (" evt_1 ", "evt_1"), ("a\x00b", "ab"),
    ("100%_'\\", "100%_'\\"), ("x" * 10_000, "x" * SEARCH_MAX_CHARS), ("🚀", "🚀"),
])
def test_clean_search(typed, searched):
    assert clean_search(typed) == searched


def test_stripe_links_by_mode():
    assert stripe_event_url("evt_1Abc", livemode=False) == "https://dashboard.stripe.com/test/events/evt_1Abc"
    assert stripe_event_url("evt_1Abc", livemode=True) == "https://dashboard.stripe.com/events/evt_1Abc"
    assert stripe_event_url("evt_1/../../x", livemode=True) is None
    assert stripe_event_url("javascript:alert(1)", livemode=False) is None


def test_csv_defuses_spreadsheet_formulas_and_keeps_text():
    rows = pd.DataFrame({"stripe_event_id": ["evt_1", "evt_2"], "error_message": ["=HYPERLINK(\"x\")", "ok, “fine”"],
                         "attempts": [1, -2]})
    back = pd.read_csv(io.BytesIO(csv_bytes(rows)))
    assert list(back["error_message"]) == ["'=HYPERLINK(\"x\")", "ok, “fine”"]
    assert list(back["attempts"]) == [1, -2]  # numbers are not text: left alone


@pytest.mark.parametrize("total, pages", [(0, 1), (1, 1), (50, 1), (51, 2), (1_000_000, 20_000)])
def test_page_count(total, pages):
    assert page_count(total) == pages


def test_the_page_and_the_picked_event_survive_the_turn_of_a_minute():
    """A preset window's end moves every minute; the listing's widgets keep their key across it
    (a picked event stayed picked only until the minute turned, then the detail vanished)."""
    before = resolve_window("30d", datetime(2026, 12, 7, 12, 0, 59, tzinfo=timezone.utc))
    after = resolve_window("30d", datetime(2026, 12, 7, 12, 1, 1, tzinfo=timezone.utc))
    assert before.end != after.end
    chosen = dict(statuses=["failed"], event_types=[], search="ada@example.org")
    assert listing_key(before.label, **chosen) == listing_key(after.label, **chosen)
    # Another choice is another listing, which starts again at page 1.
    assert listing_key(after.label, **chosen) != listing_key(after.label, **{**chosen, "search": "bob"})
    assert listing_key(after.label, **chosen) != listing_key("last 7d", **chosen)
    assert listing_key(after.label, **chosen) != listing_key(after.label, **chosen, since=date(2026, 11, 1))


def test_a_table_selection_is_cleared_when_new_events_push_the_rows_down():
    shown = ["evt_3", "evt_2", "evt_1"]
    assert rows_key(shown) == rows_key(list(shown))
    assert rows_key(["evt_4", *shown[:2]]) != rows_key(shown)
