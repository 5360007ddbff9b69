"""The Stripe gateway (jobs.stripe_gateway) against the local Stripe API."""

from __future__ import annotations

import pytest
import stripe

from core.errors import ConfigError, JobFailed
from core.settings import get_settings
from jobs.stripe_gateway import StripeKeyRejected, StripeUnavailable, gateway_from_settings
from local_stripe import checkout_session

T0 = 1_735_689_600


def test_window_bounds_are_gte_and_lt(stripe_server):
    for n in range(5):
        stripe_server.add_session(id=f"cs_test_{n}", created=T0 + n)
    gateway = gateway_from_settings()
    ids = [s["id"] for s in gateway.iter_checkout_sessions(T0 + 1, T0 + 4)]
    assert ids == ["cs_test_3", "cs_test_2", "cs_test_1"]
    assert gateway.pages_read == 1 and gateway.requests_made == 1


def test_sessions_stream_as_plain_dicts_page_by_page(stripe_server):
    stripe_server.add_sessions(checkout_session(id=f"cs_test_{n:03d}", created=T0 + n) for n in range(230))
    gateway = gateway_from_settings()
    sessions = gateway.iter_checkout_sessions(T0, T0 + 1000)
    first = next(sessions)
    assert isinstance(first, dict) and not isinstance(first, stripe.StripeObject)
    assert first["id"] == "cs_test_229"
    assert first["customer_details"]["email"] == "someone@example.com"
    assert gateway.pages_read == 1  # later pages are fetched only when reached
    rest = list(sessions)
    assert len(rest) == 229 and gateway.pages_read == 3
    assert [p[2]["limit"] for p in stripe_server.faults.log] == ["100", "100", "100"]


def test_retrieve_returns_none_for_a_missing_session(stripe_server):
    session = stripe_server.add_session(id="cs_test_here")
    gateway = gateway_from_settings()
    assert gateway.retrieve_checkout_session("cs_test_here") == session
    assert gateway.retrieve_checkout_session("cs_test_gone") is None


def test_events_with_types_and_delivery_filter(stripe_server):
    paid = checkout_session(created=T0)
    stripe_server.add_event("checkout.session.completed", paid, id="evt_ok", created=T0)
    stripe_server.add_event("checkout.session.completed", paid, id="evt_lost", created=T0 + 1,
                            delivery_success=False)
    stripe_server.add_event("charge.refunded", {"id": "ch_1", "object": "charge"}, id="evt_other",
                            created=T0 + 2, delivery_success=False)
    gateway = gateway_from_settings()
    got = gateway.iter_events(T0, T0 + 10, types=["checkout.session.completed"], delivery_success=False)
    assert [e["id"] for e in got] == ["evt_lost"]


def test_a_500_is_retried_by_the_library(stripe_server):
    stripe_server.add_session()
    stripe_server.fail_next(2, status=500)
    gateway = gateway_from_settings(max_network_retries=2)
    assert len(list(gateway.iter_checkout_sessions(0, 2**31))) == 1
    assert gateway.requests_made == 3


def test_429s_are_backed_off_then_given_up(stripe_server):
    stripe_server.add_session()
    stripe_server.fail_next(2, status=429)
    gateway = gateway_from_settings(rate_limit_backoff_s=0.01, rate_limit_retries=2)
    assert len(list(gateway.iter_checkout_sessions(0, 2**31))) == 1
    assert gateway.transport.rate_limited == 2

    stripe_server.fail_next(3, status=429)
    with pytest.raises(StripeUnavailable, match="kept answering 429"):
        gateway.retrieve_checkout_session("cs_test_any")


def test_bad_key_and_missing_key(stripe_server, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_wrong")
    with pytest.raises(StripeKeyRejected, match="check STRIPE_API_KEY") as rejected:
        list(gateway_from_settings().iter_checkout_sessions(0, 1))
    assert isinstance(rejected.value, JobFailed)
    monkeypatch.delenv("STRIPE_API_KEY")
    with pytest.raises(ConfigError, match="STRIPE_API_KEY is not set"):
        gateway_from_settings()


def test_base_must_be_a_url():
    with pytest.raises(ConfigError, match="STRIPE_API_BASE"):
        gateway_from_settings(get_settings(STRIPE_API_KEY="sk_test_x", STRIPE_API_BASE="localhost:12111"))
