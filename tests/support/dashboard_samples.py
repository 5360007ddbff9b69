"""A small, demo-like history for dashboard smoke tests: every status, failures with ids in
their messages, retries that recovered, stuck events, registrations at every funnel step.

Deterministic (seeded) and relative to ``now`` so every window of the dashboard has data.
Also the ``month_of_events`` fixture (tests/conftest.py lists this module in ``pytest_plugins``).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.factories import add_event, add_registration

EVENT_TYPES = ["checkout.session.completed", "checkout.session.expired",
               "checkout.session.async_payment_succeeded", "payment_intent.succeeded"]
ERRORS = [
    "timeout after {n} ms calling the registration service",
    "registration {uuid} not found for session cs_test_{rand}",
    "database error: deadlock detected (pid {n})",
]


def add_sample_history(conn, now: datetime, *, days: int = 30, per_day: int = 24, seed: int = 7) -> None:
    """Insert ``days`` days of events and registrations ending just before ``now``."""
    rng = random.Random(seed)
    for index in range(days * per_day):
        created = now - timedelta(minutes=5) - timedelta(seconds=rng.uniform(0, days * 86400))
        session_id = f"cs_test_{index:04d}{rng.randrange(10**8):08d}"
        roll = rng.random()
        status = "completed" if roll < 0.85 else "failed" if roll < 0.95 else "pending"
        registration = add_registration(
            conn, created_at=created, session_id=session_id if rng.random() < 0.9 else None,
            status=status if status != "failed" else "pending", email=f"user{index}@example.com",
            completed_at=created + timedelta(seconds=rng.uniform(20, 900)) if status == "completed" else None)
        event_type = rng.choice(EVENT_TYPES)
        error = None
        if status == "failed":
            error = rng.choice(ERRORS).format(n=rng.randrange(10, 99999), uuid=registration,
                                              rand=f"{rng.randrange(10**10):010d}a")
        payload = {"id": f"evt_sample{index:05d}", "type": event_type, "livemode": False,
                   "data": {"object": {"id": session_id, "object": "checkout.session",
                                       "payment_status": "paid" if status == "completed" else "unpaid"}}}
        add_event(conn, created_at=created + timedelta(seconds=2), status=status, event_type=event_type,
                  duration_ms=rng.randrange(20, 3000) if status != "pending" else None, error=error,
                  attempts=rng.choice([1, 1, 1, 2, 3]), event_id=f"evt_sample{index:05d}", payload=payload)
    # Two events stuck in 'processing' for an hour, one fresh one.
    for minutes in (60, 70, 1):
        add_event(conn, created_at=now - timedelta(minutes=minutes), status="processing",
                  event_type="checkout.session.completed")


@pytest.fixture
def month_of_events(db):
    """An event every 6 hours over the last 30 days."""
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for i in range(4 * 30):
            add_event(conn, created_at=now - timedelta(hours=6 * i, minutes=5), duration_ms=100)
    return db
