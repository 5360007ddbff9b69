"""Pytest fixtures for the local Stripe API (``local_stripe``).

Every test can ask for them (tests/conftest.py lists this module in ``pytest_plugins``)::

    def test_something(stripe_server):
        session = stripe_server.add_session(status="complete", client_reference_id=reg_id)
        stripe_server.fail_next(1, status=429)
        ...  # code under test reads STRIPE_API_BASE / STRIPE_API_KEY from the environment
        assert stripe_server.counts["list_checkout_sessions"] == 2

The server runs in a thread on a free port for one test; STRIPE_API_BASE and STRIPE_API_KEY
are set for that test (and inherited by subprocesses it starts) and restored afterwards.

``local_stripe_process(state_file)`` runs ``python -m local_stripe`` instead, as a deployment
would (a managed process on a port it picks itself and announces).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from devharness import ManagedProcess, line_ready
from local_stripe import LocalStripe, StripeState, checkout_session, event

REPO = Path(__file__).resolve().parents[2]

API_KEY = "sk_test_localfixture0000000000000000"


class StripeServerFixture:
    """A started LocalStripe plus shortcuts tests use often."""

    api_key = API_KEY

    def __init__(self, server: LocalStripe):
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> StripeState:
        return self.server.state

    @property
    def faults(self):
        return self.server.faults

    @property
    def counts(self):
        """Requests answered per endpoint (``list_checkout_sessions``, ``retrieve_checkout_session``,
        ``list_events``, ``retrieve_event``), failures included."""
        return self.server.faults.counts

    def add_session(self, **fields: Any) -> dict[str, Any]:
        """Build a Checkout Session (see ``local_stripe.checkout_session``) and serve it."""
        return self.state.add_checkout_session(checkout_session(**fields))

    def add_sessions(self, sessions) -> None:
        for session in sessions:
            self.state.add_checkout_session(session)

    def add_event(self, type: str, data_object: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return self.state.add_event(event(type, data_object, **fields))

    def fail_next(self, count: int = 1, *, status: int = 429, endpoint: str | None = None) -> None:
        self.server.faults.fail_next(count, status=status, endpoint=endpoint)

    def before_request(self, hook) -> None:
        """``hook(endpoint, params)`` runs before each answer; ``params['id']`` is the
        retrieved object's id for retrieve requests."""
        self.server.faults.before(hook)


@pytest.fixture
def stripe_server(monkeypatch):
    """A local Stripe API for one test, with STRIPE_API_BASE / STRIPE_API_KEY pointing at it."""
    server = LocalStripe(StripeState(), api_keys={API_KEY}).start()
    monkeypatch.setenv("STRIPE_API_BASE", server.url)
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    try:
        yield StripeServerFixture(server)
    finally:
        server.stop()


@pytest.fixture
def session_factory():
    """``checkout_session(**fields)``: a real-shaped Checkout Session dict (not served)."""
    return checkout_session


@contextmanager
def local_stripe_process(state_path: Path | None = None, *, api_keys: tuple[str, ...] = (),
                         extra_args: tuple[str, ...] = ()) -> Iterator[ManagedProcess]:
    """``python -m local_stripe --port 0`` until the block ends; ``ready_value.group(1)`` is its
    URL, read from the line it prints once it listens (the kernel chose the port)."""
    command = [sys.executable, "-m", "local_stripe", "--host", "127.0.0.1", "--port", "0", *extra_args]
    if state_path is not None:
        command += ["--state", str(state_path)]
    for key in api_keys:
        command += ["--api-key", key]
    with ManagedProcess(command, name="local_stripe", cwd=REPO,
                        ready=line_ready(r"local Stripe API on (http://127\.0\.0\.1:\d+)")) as process:
        yield process
