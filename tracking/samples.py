"""Kept for existing imports: sample events come from the one Stripe object builder,
:mod:`local_stripe.objects` (pinned API version, schema-checked)."""

from local_stripe.objects import checkout_session_event

__all__ = ["checkout_session_event"]
