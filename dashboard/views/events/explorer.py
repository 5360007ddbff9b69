"""Helpers of the events explorer that need no Streamlit: search text, keys, CSV."""

from __future__ import annotations

import hashlib
import re

import pandas as pd

from dashboard.components.links import SESSION_ID
from dashboard.components.text import formula_safe

SEARCH_MAX_CHARS = 200
PAGE_SIZE = 50
EXPORT_MAX_ROWS = 50_000
# events_count (queries/events.sql) counts a search's matches up to one more than this.
SEARCH_COUNT_CAP = 1_000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_search(text: str | None) -> str | None:
    """The search text as the queries take it: None when blank, at most SEARCH_MAX_CHARS.

    Everything else is kept as typed: the queries bind it as a parameter and match it
    literally (ILIKE with '%', '_' and backslashes escaped), so quotes and wildcards are
    ordinary characters. NUL is the one
    character PostgreSQL text cannot hold, so it is dropped.
    """
    if text is None:
        return None
    text = text.replace("\x00", "").strip()[:SEARCH_MAX_CHARS]
    return text or None


def customer_search(text: str | None) -> str | None:
    """The search text when it names who an event concerns (an e-mail address, a Checkout
    Session id or a registration id): those are matched exactly against the payload and the
    registration, not as text of the event id or error. None otherwise."""
    if text and (_EMAIL.match(text) or SESSION_ID.match(text) or _UUID.match(text)):
        return text
    return None


def parse_day(text: str | None):
    """A ``YYYY-MM-DD`` day (from a link) as 00:00 UTC that day, or None when absent or odd."""
    from datetime import datetime, timezone

    try:
        return datetime.strptime(str(text), "%Y-%m-%d").replace(tzinfo=timezone.utc) if text else None
    except ValueError:
        return None


def registration_table(registration: dict) -> pd.DataFrame:
    """One registration as field/value rows (amount in currency units, times in UTC)."""
    from core.checkout import format_money

    def when(value):
        return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "–"

    rows = [("Registration", registration.get("registration_id")),
            ("E-mail", registration.get("email")),
            ("Status", registration.get("processing_status")),
            ("Amount", format_money(registration.get("amount_total"), registration.get("currency"))),
            ("Checkout Session", registration.get("stripe_checkout_session_id")),
            ("Created", when(registration.get("created_at"))),
            ("Completed", when(registration.get("completed_at")))]
    return pd.DataFrame([(field, "–" if value is None else str(value)) for field, value in rows],
                        columns=["field", "value"])


def csv_bytes(rows: pd.DataFrame) -> bytes:
    """UTF-8 CSV of the rows, with cells that a spreadsheet would run as a formula defused."""
    return formula_safe(rows).to_csv(index=False).encode("utf-8")


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-int(total) // page_size))


def listing_key(window_label: str, *, statuses, event_types, search: str | None, since=None) -> str:
    """The widget key of a listing's pages and picked event: what the user chose, never the
    window's bounds, which for a preset window move on every minute (a key made from them
    would drop the page and the picked event at each turn of the minute)."""
    chosen = repr((window_label, sorted(statuses), sorted(event_types), search, since))
    return hashlib.sha256(chosen.encode()).hexdigest()[:16]


def rows_key(event_ids) -> str:
    """The widget key part of a table whose selection is a row position: the rows it shows, so
    when new events push the list down the selection is cleared, not moved to another event."""
    return hashlib.sha256("\n".join(event_ids).encode()).hexdigest()[:16]
