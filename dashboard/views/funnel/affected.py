"""Who is affected: the people behind "Paid but not completed" and the registrations an open
review item concerns, as a table an operator can act on (no Streamlit here: unit-tested).

Each row carries links: the person's events (the Events page searching by Checkout Session,
from the day the registration was created), the session in the Stripe Dashboard, and the
review item on the Reconciliation page.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

import pandas as pd

from core.checkout import format_money
from core.formatting import format_duration
from dashboard.components.links import stripe_session_url

COLUMNS = ["email", "amount", "status", "age", "session", "events", "stripe", "review", "created_at"]


def events_link(session_id: str, created_at: datetime) -> str:
    """The Events page searching for the session's events since the registration's day."""
    return "/events?" + urlencode({"q": session_id, "since": f"{created_at:%Y-%m-%d}"})


def affected_table(rows: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The ``affected_registrations`` rows as the page shows them (one row per person)."""
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    records = []
    for row in rows.to_dict("records"):
        session = row["stripe_checkout_session_id"]
        created = pd.Timestamp(row["created_at"]).to_pydatetime()
        review = row.get("review_item_id")
        has_review = review is not None and not pd.isna(review)
        why = "paid, not completed" if pd.notna(row.get("paid_event_id")) else "in review"
        records.append({
            "email": row["email"] or "–",
            "amount": format_money(row["amount_total"], row["currency"]) or "–",
            "status": f"{row['processing_status']} ({why})",
            "age": format_duration(max((now - created).total_seconds(), 0)),
            "session": session or "–",
            "events": events_link(session, created) if session else None,
            "stripe": stripe_session_url(session, row.get("livemode")) if session else None,
            "review": f"/reconciliation?item={int(review)}" if has_review else None,
            "created_at": created,
        })
    return pd.DataFrame(records, columns=COLUMNS)
