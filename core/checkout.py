"""The checkout domain: Stripe's payment rules as the receiver, the jobs and the dashboard
all apply them, kept here once.

- :data:`PAID_STATUSES`: the ``payment_status`` values that mean the customer's money is in
  (or nothing was owed).
- :func:`registration_id`: a session's ``client_reference_id`` as a registration id (the app
  sends the registration's UUID there; anything else is free text and names no row).
- :func:`match_registration`: a session belongs to the registration recording its id, else to
  the one its ``client_reference_id`` names. The caller says how to look each up (a locked
  row in the receiver's transaction, a dict of a chunk's rows in reconciliation).
- ``complete_registration`` in ``core/checkout.sql``: the one statement that marks a
  registration paid, changing only a row still ``pending``.
- :func:`format_money`: Stripe's minor units in the currency's own decimals (2500 JPY is
  "2,500 JPY", never "25.00 JPY").
- :data:`MISMATCH_KINDS`: reconciliation's kinds with their action and severity (the
  ``reconciliation_items`` CHECKs are tested against it).

No database access at import and no dashboard or pandas imports: the receiver loads this.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Callable, Mapping, TypeVar

from sqlalchemy.engine import Connection

from core.formatting import number
from core.sql import load_package

SQL = load_package("core", "checkout.sql")

# https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-payment_status
# (core.stripe_api.PAYMENT_STATUSES: every value Stripe sends, declared with the API version.)
PAID_STATUSES = frozenset({"paid", "no_payment_required"})

# kind -> (action, severity). Only a registration still pending is fixed without a person
# (Stripe's session then settles it: paid -> completed, expired -> expired); every other
# disagreement waits for someone to review it.
MISMATCH_KINDS: dict[str, tuple[str, str]] = {
    "paid_but_pending": ("auto_fixed", "info"),
    "expired_but_pending": ("auto_fixed", "info"),
    "paid_but_failed": ("manual_review", "warning"),
    # Someone paid and has nothing: as urgent as a registration nobody paid for.
    "paid_no_registration": ("manual_review", "critical"),
    "completed_not_paid": ("manual_review", "critical"),
    "completed_missing_in_stripe": ("manual_review", "warning"),
    "amount_mismatch": ("manual_review", "warning"),
}
MISMATCH_ACTIONS = ("auto_fixed", "manual_review")
SEVERITIES = ("info", "warning", "critical")
AUTO_FIX_KINDS = frozenset(k for k, (action, _) in MISMATCH_KINDS.items() if action == "auto_fixed")


def is_paid(session: Mapping[str, Any]) -> bool:
    """The session is complete and its money is in (or nothing was owed)."""
    return session.get("status") == "complete" and session.get("payment_status") in PAID_STATUSES


def registration_id(reference: Any) -> str | None:
    """``client_reference_id`` as a canonical registration id (UUID string), or None when it
    is not a UUID (the field is free text to Stripe)."""
    if not isinstance(reference, str) or not reference.strip():
        return None
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        return None


R = TypeVar("R")


def match_registration(session_id: str | None, client_reference_id: Any, *,
                       by_session_id: Callable[[str], R | None],
                       by_id: Callable[[str], R | None]) -> R | None:
    """The registration a Checkout Session belongs to: the one recording ``session_id``,
    else the one its ``client_reference_id`` names; None when neither exists."""
    found = by_session_id(session_id) if session_id else None
    if found is not None:
        return found
    ref = registration_id(client_reference_id)
    return by_id(ref) if ref else None


def complete_registration(conn: Connection, *, registration_id: str, session_id: str,
                          amount_total: int | None, currency: str | None,
                          completed_at: datetime | None = None) -> bool:
    """Mark a still-pending registration completed, paid by ``session_id``, in the caller's
    transaction. True when the row changed; False when it was no longer pending (a webhook or
    a person got there first) or another row already records this session.
    ``completed_at`` None means the transaction's time."""
    return SQL.execute(conn, "complete_registration", registration_id=registration_id,
                       session_id=session_id, amount_total=amount_total,
                       currency=currency.lower() if currency else None,
                       completed_at=completed_at).first() is not None


# --- money -------------------------------------------------------------------------------

# Stripe amounts are in the currency's smallest unit; these currencies have no minor unit,
# or three decimals (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL_CURRENCIES = frozenset("bhd jod kwd omr tnd".split())


def currency_decimals(currency: Any) -> int:
    """How many decimals Stripe's minor units of ``currency`` stand for (2 when unknown)."""
    code = str(currency or "").lower()
    return 0 if code in ZERO_DECIMAL_CURRENCIES else 3 if code in THREE_DECIMAL_CURRENCIES else 2


def format_money(amount_minor: Any, currency: Any) -> str | None:
    """'199.00 EUR' from Stripe's 19900 and 'eur'; '2,500 JPY' from 2500 and 'jpy'; None
    without an amount (None, NaN or not a number)."""
    amount = None if isinstance(amount_minor, bool) else number(amount_minor)
    if amount is None:
        return None
    decimals = currency_decimals(currency)
    code = str(currency or "").upper()
    return f"{amount / 10 ** decimals:,.{decimals}f} {code}".strip()
