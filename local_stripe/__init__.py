"""A local Stripe API for tests, the demo and benchmarks.

It speaks the parts of Stripe's API this project reads, in the real JSON shapes, through
the official ``stripe`` library pointed at it with ``STRIPE_API_BASE``:

- ``GET /v1/checkout/sessions`` (``created[gt|gte|lt|lte]``, ``status``, ``customer``,
  ``customer_account``, ``customer_details[email]``, ``payment_intent``, ``payment_link``,
  ``subscription``, ``limit`` 1..100, ``starting_after``, ``ending_before``) and
  ``GET /v1/checkout/sessions/{id}``;
- ``GET /v1/events`` (``created[...]``, ``type`` with a trailing ``*`` wildcard, ``types[]``
  of at most 20 exact types, ``delivery_success``, paging as above) and ``GET /v1/events/{id}``;
- ``GET /v1/webhook_endpoints`` (paging as above), ``GET /v1/webhook_endpoints/{id}`` and
  ``POST /v1/webhook_endpoints/{id}`` with ``disabled=true|false`` (what Stripe does to an
  endpoint that keeps failing, and how it is enabled again).

It answers in one API version, the one the project pins (``core.stripe_api.API_VERSION``),
whatever ``Stripe-Version`` a request asks for, and takes exactly the parameters Stripe's
published OpenAPI description of that version lists (an excerpt is in ``openapi/``):
anything else is a 400, as from Stripe (``client_reference_id`` is no filter of the
sessions list, for instance).

Modules: ``store`` (the objects, in list order), ``params`` (parameter rules),
``fault_injection`` (queued failures, counters, rate limit), ``server`` (HTTP), ``objects``
(builders).

Lists come newest first in Stripe's envelope (``{"object": "list", "data": [...],
"has_more": ..., "url": ...}``). Errors are Stripe's error JSON: 401 for a missing or
unknown key, 404 ``resource_missing``, 400 for a bad parameter, 429 ``rate_limit``.

Run it::

    python -m local_stripe --state stripe-state.json --port 12111 [--api-key sk_test_x] [--rate-limit 25]
    STRIPE_API_BASE=http://127.0.0.1:12111 STRIPE_API_KEY=sk_test_x python -m jobs reconcile

The state file is JSON with lists of objects exactly as Stripe returns them (and an
optional ``"webhook_endpoints": [...]``, built with :func:`webhook_endpoint`)::

    {
      "checkout_sessions": [ {"id": "cs_test_...", "object": "checkout.session",
                              "created": 1735689600, "status": "complete",
                              "payment_status": "paid", "amount_total": 2500,
                              "currency": "eur", "client_reference_id": "<registration uuid>",
                              ...}, ... ],
      "events": [ {"id": "evt_...", "object": "event", "created": 1735689600,
                   "type": "checkout.session.completed",
                   "data": {"object": {...a checkout.session...}},
                   "pending_webhooks": 0, ...}, ... ]
    }

Every object needs ``id``, ``object`` and an integer ``created``; the rest is served as
given. An event may carry a private ``"_delivery_success": false`` (never sent) to be listed
by ``delivery_success=false``; without it, an event counts as delivered when its
``pending_webhooks`` is 0. Build objects with :func:`checkout_session` and :func:`event`.

In tests, :class:`LocalStripe` runs in a thread (``LocalStripe(state).start()``) and its
``faults`` queue failures (``faults.fail_next(2, status=429)``), run hooks before answering
and count requests per endpoint.
"""

from local_stripe.fault_injection import (
    ENDPOINTS,
    LIST_EVENTS,
    LIST_SESSIONS,
    LIST_WEBHOOK_ENDPOINTS,
    RETRIEVE_EVENT,
    RETRIEVE_SESSION,
    RETRIEVE_WEBHOOK_ENDPOINT,
    UPDATE_WEBHOOK_ENDPOINT,
    Faults,
)
from local_stripe.objects import checkout_session, checkout_session_event, event, stripe_id, webhook_endpoint
from local_stripe.server import LocalStripe
from local_stripe.store import StripeState

__all__ = [
    "ENDPOINTS", "LIST_EVENTS", "LIST_SESSIONS", "LIST_WEBHOOK_ENDPOINTS", "RETRIEVE_EVENT", "RETRIEVE_SESSION",
    "RETRIEVE_WEBHOOK_ENDPOINT", "UPDATE_WEBHOOK_ENDPOINT",
    "Faults", "LocalStripe", "StripeState", "checkout_session", "checkout_session_event",
    "event", "stripe_id", "webhook_endpoint",
]
