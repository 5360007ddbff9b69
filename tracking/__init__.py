"""What a webhook handler calls to record Stripe events in ``webhook_events``.

- ``migrations/functions/tracking.sql``: the SQL functions, callable from any language.
- ``tracking.tracker``: ``EventTracker``, the Python context manager over them.
- ``tracking.registrations``: the four Checkout Session events applied to registrations.
- ``tracking.receiver``: the reference ASGI receiver (``uvicorn tracking.receiver:app``).

See docs/tracking.md.
"""
