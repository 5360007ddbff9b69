"""Checkout Session events in Stripe's JSON shape, for tests, the load bench and demos."""

from __future__ import annotations

import time
import uuid
from typing import Any

API_VERSION = "2024-06-20"


def checkout_session_event(event_type: str, *, session_id: str | None = None,
                           registration_id: str | None = None, payment_status: str = "paid",
                           status: str | None = None, amount_total: int | None = 2500,
                           currency: str | None = "eur", created: int | None = None,
                           event_id: str | None = None, livemode: bool = False,
                           email: str = "someone@example.com") -> dict[str, Any]:
    """A ``checkout.session.*`` event as Stripe sends it (only the fields that matter here
    are meaningful; the rest keep the shape)."""
    created = int(time.time()) if created is None else created
    session_id = session_id or f"cs_test_{uuid.uuid4().hex}"
    if status is None:
        status = "expired" if event_type.endswith(".expired") else "complete"
    session = {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "client_reference_id": registration_id,
        "created": created - 60,
        "currency": currency,
        "customer_details": {"email": email, "name": None},
        "expires_at": created + 86_400,
        "livemode": livemode,
        "metadata": {},
        "mode": "payment",
        "payment_intent": f"pi_{uuid.uuid4().hex[:24]}" if payment_status == "paid" else None,
        "payment_status": payment_status,
        "status": status,
        "url": None,
    }
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": session},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
