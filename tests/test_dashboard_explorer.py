"""Search text, Stripe links and CSV export of the events explorer."""

import io

import pandas as pd
import pytest

from dashboard.explorer import SEARCH_MAX_CHARS, clean_search, csv_bytes, page_count, stripe_event_url


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
