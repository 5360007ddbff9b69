"""The demo's Stripe side: a small demo history in the test database (the ``demo`` fixture)
and ``python -m local_stripe`` serving its state file, as the README's run command does."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.admin import demo_data
from tests.support.stripe_server import local_stripe_process as stripe_process

DEMO_KEY = "sk_test_demo"


@contextmanager
def local_stripe_process(state_path: Path):
    """``python -m local_stripe --state FILE`` until the block ends; yields its env."""
    with stripe_process(state_path) as process:
        yield {"STRIPE_API_BASE": process.ready_value.group(1), "STRIPE_API_KEY": DEMO_KEY}


@pytest.fixture
def demo(db, tmp_path):
    """A small demo history in the test database and its Stripe state file."""
    state = tmp_path / "demo-stripe-state.json"
    demo_data.run(db, now=datetime.now(timezone.utc), days=8, events_per_day=60, seed=7,
                  stripe_state_path=state, trigger="cli")
    return state
