"""Reconciliation: Stripe's Checkout Sessions against the local registrations, and the review queue."""
