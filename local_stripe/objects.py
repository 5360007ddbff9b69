"""The one builder of Stripe objects for tests, the demo and benchmarks, in the JSON shape
of the pinned API version (``core.stripe_api.API_VERSION``).

Only the fields the project reads are varied by the arguments; the rest are filled with the
values Stripe sends for a simple one-time Checkout payment, so the objects look like the
ones a real account returns (https://docs.stripe.com/api/checkout/sessions/object). A test
validates what these builders make against the schema of that version
(``local_stripe/openapi/``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from core.stripe_api import API_VERSION, PAYMENT_STATUSES, SESSION_STATUSES

# Stripe ids are a prefix and a random base62 tail.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

CHECKOUT_SESSION_LIFETIME_S = 24 * 3600  # Stripe's default expires_at is 24 hours after creation


def stripe_id(prefix: str, length: int = 24, *, livemode: bool = False) -> str:
    """A random id shaped like Stripe's (``cs_test_a1B2...`` for Checkout Sessions)."""
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    if prefix == "cs":
        return f"cs_{'live' if livemode else 'test'}_{tail}"
    return f"{prefix}_{tail}"


def checkout_session(
    *,
    id: str | None = None,
    created: int | None = None,
    status: str = "complete",
    payment_status: str | None = None,
    amount_total: int = 2500,
    currency: str = "eur",
    client_reference_id: str | None = None,
    email: str | None = "someone@example.com",
    livemode: bool = False,
    metadata: dict[str, str] | None = None,
    payment_intent: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``checkout.session`` object in payment mode.

    ``status`` is ``open``, ``complete`` or ``expired``; ``payment_status`` defaults to what
    that status usually carries (``paid`` for complete, ``unpaid`` otherwise).
    """
    if status not in SESSION_STATUSES:
        raise ValueError(f"unknown Checkout Session status {status!r}")
    if payment_status is None:
        payment_status = "paid" if status == "complete" else "unpaid"
    if payment_status not in PAYMENT_STATUSES:
        raise ValueError(f"unknown payment_status {payment_status!r}")
    created = int(created if created is not None else time.time())
    session_id = id or stripe_id("cs", 58, livemode=livemode)
    if payment_intent is None and payment_status == "paid":
        payment_intent = stripe_id("pi")
    session: dict[str, Any] = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "https://events.example.com/register/cancelled",
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": None,
        "customer_account": None,
        "customer_creation": "if_required",
        "customer_details": None if email is None or status == "open" else {
            "address": None, "email": email, "name": None, "phone": None,
            "tax_exempt": "none", "tax_ids": [],
        },
        "customer_email": email,
        "discounts": [],
        "expires_at": created + CHECKOUT_SESSION_LIFETIME_S,
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": {
            "account_tax_ids": None, "custom_fields": None, "description": None, "footer": None,
            "issuer": None, "metadata": {}, "rendering_options": None}},
        "livemode": livemode,
        "locale": None,
        "metadata": dict(metadata or {}),
        "mode": "payment",
        "payment_intent": payment_intent,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": None,
        "success_url": "https://events.example.com/register/thanks?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": (f"https://checkout.stripe.com/c/pay/{session_id}" if status == "open" else None),
        "wallet_options": None,
    }
    session.update(extra)
    return session


def event(
    type: str,
    data_object: dict[str, Any],
    *,
    id: str | None = None,
    created: int | None = None,
    livemode: bool | None = None,
    pending_webhooks: int = 0,
    delivery_success: bool | None = None,
) -> dict[str, Any]:
    """An ``event`` object wrapping ``data_object`` (e.g. a Checkout Session).

    ``delivery_success`` is kept in a private ``_delivery_success`` key that the server uses
    for the ``delivery_success`` filter and never sends; by default an event is delivered
    when no webhook endpoint is still pending.
    """
    created = int(created if created is not None else data_object.get("created", time.time()))
    evt: dict[str, Any] = {
        "id": id or stripe_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": data_object},
        "livemode": bool(data_object.get("livemode", False) if livemode is None else livemode),
        "pending_webhooks": pending_webhooks,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }
    if delivery_success is not None:
        evt["_delivery_success"] = delivery_success
    return evt


def checkout_session_event(event_type: str, *, session_id: str | None = None,
                           registration_id: str | None = None, payment_status: str = "paid",
                           status: str | None = None, amount_total: int | None = 2500,
                           currency: str | None = "eur", created: int | None = None,
                           event_id: str | None = None, livemode: bool = False,
                           email: str = "someone@example.com",
                           pending_webhooks: int = 1) -> dict[str, Any]:
    """A ``checkout.session.*`` event as Stripe delivers it to a webhook endpoint (still
    pending for that endpoint, hence ``pending_webhooks`` 1), wrapping a session created a
    minute before the event."""
    created = int(time.time()) if created is None else int(created)
    if status is None:
        status = "expired" if event_type.endswith(".expired") else "complete"
    session = checkout_session(
        id=session_id, created=created - 60, status=status, payment_status=payment_status,
        amount_total=amount_total, currency=currency, client_reference_id=registration_id,
        email=email, livemode=livemode)
    return event(event_type, session, id=event_id, created=created, livemode=livemode,
                 pending_webhooks=pending_webhooks)


def webhook_endpoint(url: str, *, enabled_events: list[str] | None = None, status: str = "enabled",
                     api_version: str | None = API_VERSION, id: str | None = None, created: int | None = None,
                     livemode: bool = False, description: str | None = None) -> dict[str, Any]:
    """A ``webhook_endpoint`` object as ``GET /v1/webhook_endpoints`` lists it (no ``secret``:
    Stripe returns it only when the endpoint is created)."""
    return {
        "id": id or stripe_id("we"),
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": int(time.time()) if created is None else int(created),
        "description": description,
        "enabled_events": list(enabled_events or ["*"]),
        "livemode": livemode,
        "metadata": {},
        "status": status,
        "url": url,
    }
