"""Helpers of the events explorer that need no Streamlit: search text, Stripe links, CSV."""

from __future__ import annotations

import re

import pandas as pd

from dashboard.text import formula_safe

SEARCH_MAX_CHARS = 200
PAGE_SIZE = 50
EXPORT_MAX_ROWS = 50_000
_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,255}$")


def clean_search(text: str | None) -> str | None:
    """The search text as the queries take it: None when blank, at most SEARCH_MAX_CHARS.

    Everything else is kept as typed: the queries bind it as a parameter and match it with
    strpos(), so quotes, '%', '_' and backslashes are ordinary characters. NUL is the one
    character PostgreSQL text cannot hold, so it is dropped.
    """
    if text is None:
        return None
    text = text.replace("\x00", "").strip()[:SEARCH_MAX_CHARS]
    return text or None


def stripe_event_url(event_id: str, livemode: bool) -> str | None:
    """The event's page in the Stripe Dashboard (test or live), or None for an odd id."""
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        return None
    return f"https://dashboard.stripe.com/{'' if livemode else 'test/'}events/{event_id}"


def csv_bytes(rows: pd.DataFrame) -> bytes:
    """UTF-8 CSV of the rows, with cells that a spreadsheet would run as a formula defused."""
    return formula_safe(rows).to_csv(index=False).encode("utf-8")


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-int(total) // page_size))
