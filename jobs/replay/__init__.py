"""Replay: finding and re-delivering missed or failed Stripe events (retry, sweep, re-delivery)."""
