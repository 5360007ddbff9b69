"""The Stripe API version this project is written against, declared once.

Requests to Stripe carry it (``Stripe-Version``), so the objects read back have the shape
the code expects whatever the account's default version is; ``local_stripe`` answers in it
and stamps its events with it; the demo's payloads claim it. The schema excerpt the tests
validate served objects against (``local_stripe/openapi/``) is of this version, taken from
Stripe's published OpenAPI description (https://github.com/stripe/openapi).

The Checkout Session enums of that version live here too (what Stripe may send, used by the
receiver's checks and by ``local_stripe`` alike); which of them count as paid is a rule of
the checkout domain (``core.checkout.PAID_STATUSES``).
"""

API_VERSION = "2026-07-29.dahlia"

# https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-status
SESSION_STATUSES = frozenset({"open", "complete", "expired"})
# https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-payment_status
PAYMENT_STATUSES = frozenset({"paid", "unpaid", "no_payment_required"})
