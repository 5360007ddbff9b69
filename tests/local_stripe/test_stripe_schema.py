"""Every Stripe object the project builds, serves or loads as demo data has the shape of the
pinned API version, checked against Stripe's published schema (vendored excerpt)."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
import stripe

from core.checkout import PAID_STATUSES
from core.stripe_api import API_VERSION, PAYMENT_STATUSES, SESSION_STATUSES
from jobs.admin import demo_data
from local_stripe import checkout_session, checkout_session_event, event
from local_stripe.params import spec
from tests.support.stripe_schema import api_version, errors
from tests.support.stripe_server import API_KEY

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_the_vendored_schema_is_of_the_pinned_version():
    assert api_version() == API_VERSION


def test_the_session_enums_are_those_of_the_pinned_version():
    fields = spec()["components"]["schemas"]["checkout.session"]["properties"]
    assert set(fields["status"]["enum"]) == SESSION_STATUSES
    assert set(fields["payment_status"]["enum"]) == PAYMENT_STATUSES
    assert PAID_STATUSES < PAYMENT_STATUSES


@pytest.mark.parametrize("fields", [
    {}, {"status": "open"}, {"status": "expired"}, {"status": "complete", "payment_status": "unpaid"},
    {"currency": "jpy", "amount_total": 2500, "email": None}, {"livemode": True},
])
def test_built_sessions_and_events_follow_the_schema(fields):
    session = checkout_session(created=T0, **fields)
    assert errors(session, "checkout.session") == []
    assert errors(event("checkout.session.completed", session), "event") == []


@pytest.mark.parametrize("event_type", ["checkout.session.completed", "checkout.session.expired",
                                        "checkout.session.async_payment_failed"])
def test_sample_webhook_events_follow_the_schema(event_type):
    assert errors(checkout_session_event(event_type, registration_id="r-1"), "event") == []


def test_the_schema_check_catches_what_the_version_does_not_have():
    session = checkout_session(created=T0)
    assert any("ui_mode" in e for e in errors({**session, "ui_mode": "hosted"}, "checkout.session"))
    assert any("payment_state" in e for e in errors({**session, "payment_state": "x"}, "checkout.session"))
    missing = {k: v for k, v in session.items() if k != "custom_text"}
    assert any("custom_text" in e for e in errors(missing, "checkout.session"))
    bad_event = event("checkout.session.completed", {**session, "mode": "donation"})
    assert any("data/object" in e and "mode" in e for e in errors(bad_event, "event"))


def test_everything_the_server_serves_follows_the_schema(stripe_server):
    for n in range(3):
        session = stripe_server.add_session(created=T0 + n, status=("open", "complete", "expired")[n])
        stripe_server.add_event("checkout.session.completed", session, created=T0 + n)
    served = []
    for path in ("/v1/checkout/sessions?limit=100", "/v1/events?limit=100"):
        request = urllib.request.Request(stripe_server.url + path,
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(request) as response:
            served += json.loads(response.read())["data"]
    assert len(served) == 6
    for obj in served:
        assert errors(obj, obj["object"]) == [], obj["id"]


def test_demo_data_payloads_and_stripe_state_follow_the_schema(db, tmp_path):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    demo_data.run(db, now=now, days=2, events_per_day=200,
                  stripe_state_path=tmp_path / "state.json")
    state = json.loads((tmp_path / "state.json").read_text())
    with db.connect() as conn:
        payloads = [row[0] for row in conn.execute(sa.text(
            "SELECT payload FROM webhook_events WHERE event_type LIKE 'checkout.session.%'"))]
    assert payloads and state["events"] and state["checkout_sessions"]
    problems = {}
    for payload in payloads + [{k: v for k, v in e.items() if not k.startswith("_")}
                               for e in state["events"]]:
        found = errors(payload, "event")
        if found:
            problems[payload["id"]] = found
    for session in state["checkout_sessions"]:
        found = errors(session, "checkout.session")
        if found:
            problems[session["id"]] = found
    for endpoint in state["webhook_endpoints"]:  # the demo app's endpoint
        found = errors(endpoint, "webhook_endpoint")
        if found:
            problems[endpoint["id"]] = found
    assert problems == {} and len(state["webhook_endpoints"]) == 1
    assert {p["api_version"] for p in payloads} == {API_VERSION}


def test_answers_in_its_own_version_whatever_is_asked(stripe_server):
    request = urllib.request.Request(stripe_server.url + "/v1/events",
                                     headers={"Authorization": f"Bearer {API_KEY}",
                                              "Stripe-Version": "2020-08-27"})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Stripe-Version"] == API_VERSION
    client = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_server.url})
    listed = client.v1.events.list()
    assert listed.last_response.headers["Stripe-Version"] == API_VERSION
