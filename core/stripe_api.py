"""The Stripe API version this project is written against, declared once.

Requests to Stripe carry it (``Stripe-Version``), so the objects read back have the shape
the code expects whatever the account's default version is; ``local_stripe`` answers in it
and stamps its events with it; the demo's payloads claim it. The schema excerpt the tests
validate served objects against (``local_stripe/openapi/``) is of this version, taken from
Stripe's published OpenAPI description (https://github.com/stripe/openapi).
"""

API_VERSION = "2026-07-29.dahlia"
