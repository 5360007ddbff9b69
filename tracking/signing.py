"""Stripe's webhook signature scheme, for re-delivering stored events as Stripe would.

``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``
(https://docs.stripe.com/webhooks#verify-manually). The receiver checks it with the stripe
library; ``retry`` and ``sweep --replay`` sign with this so the app's own endpoint accepts
their deliveries through its ordinary path.
"""

from __future__ import annotations

import hashlib
import hmac


def stripe_signature(body: bytes, secret: str, *, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``body`` signed with ``secret`` at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
