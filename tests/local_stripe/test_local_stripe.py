"""The local Stripe API, read through the official stripe library as production code does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import stripe

from local_stripe import LocalStripe, StripeState, checkout_session, event
from tests.support.stripe_server import API_KEY, local_stripe_process

T0 = 1_735_689_600  # 2025-01-01T00:00:00Z


def client_for(server, key: str = API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, max_network_retries=0)


def test_list_is_newest_first_and_pages_with_starting_after(stripe_server):
    for n in range(250):
        stripe_server.add_session(id=f"cs_test_{n:04d}", created=T0 + n)
    client = client_for(stripe_server)

    first = client.v1.checkout.sessions.list(params={"limit": 100})
    assert first.object == "list" and first.url == "/v1/checkout/sessions" and first.has_more
    assert [s.id for s in first.data[:2]] == ["cs_test_0249", "cs_test_0248"]

    seen = [s.id for s in first.auto_paging_iter()]
    assert seen == [f"cs_test_{n:04d}" for n in range(249, -1, -1)]
    assert stripe_server.counts["list_checkout_sessions"] == 3


def test_created_bounds_and_status_filter(stripe_server):
    for n in range(10):
        stripe_server.add_session(id=f"cs_test_{n}", created=T0 + n * 10,
                                  status="complete" if n % 2 else "expired")
    client = client_for(stripe_server)

    def ids(**params):
        return [s.id for s in client.v1.checkout.sessions.list(params=params).auto_paging_iter()]

    assert ids(created={"gte": T0 + 20, "lt": T0 + 50}) == ["cs_test_4", "cs_test_3", "cs_test_2"]
    assert ids(created={"gt": T0 + 20, "lte": T0 + 50}) == ["cs_test_5", "cs_test_4", "cs_test_3"]
    assert ids(created={"gte": T0 + 20, "lt": T0 + 50}, status="expired") == ["cs_test_4", "cs_test_2"]
    assert ids(created=T0 + 30) == ["cs_test_3"]


def test_ending_before_returns_the_newer_neighbours(stripe_server):
    for n in range(5):
        stripe_server.add_session(id=f"cs_test_{n}", created=T0 + n)
    page = client_for(stripe_server).v1.checkout.sessions.list(
        params={"ending_before": "cs_test_1", "limit": 2})
    assert [s.id for s in page.data] == ["cs_test_3", "cs_test_2"]
    assert page.has_more


def test_retrieve_and_resource_missing(stripe_server):
    session = stripe_server.add_session(client_reference_id="reg-1", amount_total=4200)
    client = client_for(stripe_server)

    got = client.v1.checkout.sessions.retrieve(session["id"])
    assert got.to_dict() == session
    assert got.customer_details.email == "someone@example.com"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert "No such checkout.session: 'cs_test_nope'" in missing.value.user_message


def test_a_wrong_or_missing_key_is_refused(stripe_server):
    with pytest.raises(stripe.AuthenticationError) as wrong:
        client_for(stripe_server, "sk_test_wrongwrongwrong").v1.checkout.sessions.list()
    assert wrong.value.http_status == 401
    assert "Invalid API Key provided" in wrong.value.user_message

    request = urllib.request.Request(stripe_server.url + "/v1/checkout/sessions")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request)
    assert missing.value.code == 401
    assert "did not provide an API key" in json.loads(missing.value.read())["error"]["message"]


def test_bad_parameters_answer_400(stripe_server):
    client = client_for(stripe_server)
    with pytest.raises(stripe.InvalidRequestError) as too_many:
        client.v1.checkout.sessions.list(params={"limit": 101})
    assert too_many.value.http_status == 400 and too_many.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.checkout.sessions.list(params={"payment_status": "paid"})
    assert "unknown parameter: payment_status" in unknown.value.user_message


def test_injected_faults_and_counters(stripe_server):
    stripe_server.add_session()
    stripe_server.fail_next(1, status=429, endpoint="list_checkout_sessions")
    stripe_server.fail_next(1, status=500)
    client = client_for(stripe_server)

    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.checkout.sessions.list()
    assert limited.value.http_status == 429
    assert limited.value.json_body["error"]["code"] == "rate_limit"
    with pytest.raises(stripe.APIError) as broken:
        client.v1.checkout.sessions.list()
    assert broken.value.http_status == 500
    assert len(client.v1.checkout.sessions.list().data) == 1
    assert stripe_server.counts["list_checkout_sessions"] == 3


def test_the_library_retries_a_500_but_not_a_plain_429(stripe_server):
    stripe_server.add_session()
    retrying = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_server.url},
                                   max_network_retries=2)
    stripe_server.fail_next(1, status=500)
    assert len(retrying.v1.checkout.sessions.list().data) == 1
    assert stripe_server.counts["list_checkout_sessions"] == 2

    stripe_server.fail_next(1, status=429)
    with pytest.raises(stripe.RateLimitError):
        retrying.v1.checkout.sessions.list()


def test_events_list_filters_and_retrieve(stripe_server):
    paid = checkout_session(created=T0)
    stripe_server.add_event("checkout.session.completed", paid, id="evt_1", created=T0)
    stripe_server.add_event("checkout.session.expired", paid, id="evt_2", created=T0 + 1,
                            pending_webhooks=1)
    stripe_server.add_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"},
                            id="evt_3", created=T0 + 2, delivery_success=False)
    client = client_for(stripe_server)

    def ids(**params):
        return [e.id for e in client.v1.events.list(params=params).auto_paging_iter()]

    assert ids() == ["evt_3", "evt_2", "evt_1"]
    assert ids(type="checkout.session.*") == ["evt_2", "evt_1"]
    assert ids(types=["payment_intent.succeeded", "checkout.session.completed"]) == ["evt_3", "evt_1"]
    assert ids(delivery_success=False) == ["evt_3", "evt_2"]
    assert ids(created={"lt": T0 + 1}) == ["evt_1"]

    got = client.v1.events.retrieve("evt_1")
    assert got.data.object.id == paid["id"] and got.type == "checkout.session.completed"
    assert "_delivery_success" not in client.v1.events.retrieve("evt_3").to_dict()
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.events.retrieve("evt_nope")
    assert missing.value.code == "resource_missing"


def test_rate_limit_like_stripe():
    with LocalStripe(StripeState([checkout_session()]), rate_limit=3) as server:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": server.url})
        statuses = []
        for _ in range(5):
            try:
                client.v1.checkout.sessions.list()
                statuses.append(200)
            except stripe.RateLimitError:
                statuses.append(429)
        assert statuses.count(429) >= 2


def test_state_file_rejects_objects_without_their_shape():
    with pytest.raises(ValueError, match="checkout.session"):
        StripeState.from_data({"checkout_sessions": [{"id": "cs_1", "created": T0}]})
    with pytest.raises(ValueError, match="unknown keys"):
        StripeState.from_data({"sessions": []})


def test_command_line_serves_a_state_file(tmp_path):
    state = {"checkout_sessions": [checkout_session(id="cs_test_fromfile", created=T0)],
             "events": [event("checkout.session.completed", checkout_session(created=T0), id="evt_f")]}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    with local_stripe_process(path, api_keys=("sk_test_cli",)) as proc:
        assert "1 Checkout Sessions and 1 events" in proc.log().splitlines()[0]
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": proc.ready_value.group(1)})
        assert [s.id for s in client.v1.checkout.sessions.list().data] == ["cs_test_fromfile"]
        assert client.v1.events.retrieve("evt_f").type == "checkout.session.completed"


def test_command_line_reports_a_bad_state_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "local_stripe", "--state", str(path),
                             "--port", "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "cannot load Stripe state" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_session_filters_stripe_takes_and_those_it_refuses(stripe_server):
    stripe_server.add_session(id="cs_test_a", created=T0, email="a@example.com",
                              customer_account="acct_1")
    stripe_server.add_session(id="cs_test_b", created=T0 + 1, email="b@example.com")
    client = client_for(stripe_server)

    def ids(**params):
        return [s.id for s in client.v1.checkout.sessions.list(params=params).auto_paging_iter()]

    assert ids(customer_account="acct_1") == ["cs_test_a"]
    assert ids(customer_details={"email": "b@example.com"}) == ["cs_test_b"]
    for params, param, text in [
            ({"client_reference_id": "reg-1"}, "client_reference_id", "unknown parameter"),
            ({"customer_details": {"phone": "+1"}}, "customer_details[phone]", "unknown parameter"),
            ({"status": "paid"}, "status", "must be one of complete, expired, or open")]:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.checkout.sessions.list(params=params)
        assert refused.value.http_status == 400 and refused.value.param == param
        assert text in refused.value.user_message


def test_customer_details_needs_its_email(stripe_server):
    # The library drops an empty hash, so send the request as Stripe would receive it.
    request = urllib.request.Request(
        stripe_server.url + "/v1/checkout/sessions?customer_details[name]=x",
        headers={"Authorization": f"Bearer {API_KEY}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"]["param"] == "customer_details[name]"
    request = urllib.request.Request(stripe_server.url + "/v1/checkout/sessions?customer_details=x",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with pytest.raises(urllib.error.HTTPError) as not_a_hash:
        urllib.request.urlopen(request)
    assert not_a_hash.value.code == 400


def test_event_type_filters_as_stripe_allows_them(stripe_server):
    session = checkout_session(created=T0)
    for n, kind in enumerate(["checkout.session.completed", "checkout.session.expired",
                              "charge.succeeded"]):
        stripe_server.add_event(kind, session, id=f"evt_{n}", created=T0 + n)
    client = client_for(stripe_server)

    def ids(**params):
        return [e.id for e in client.v1.events.list(params=params).auto_paging_iter()]

    assert ids(type="checkout.session.*") == ["evt_1", "evt_0"]
    assert ids(type="charge.succeeded") == ["evt_2"]
    assert ids(types=[f"unused.type_{n}" for n in range(19)] + ["charge.succeeded"]) == ["evt_2"]
    for params, param in [({"types": [f"t.{n}" for n in range(21)]}, "types"),
                          ({"types": ["checkout.session.*"]}, "types[0]"),
                          ({"type": "checkout.*.completed"}, "type"),
                          ({"type": "charge.succeeded", "types": ["charge.succeeded"]}, "types"),
                          ({"limit": 0}, "limit")]:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.events.list(params=params)
        assert refused.value.http_status == 400 and refused.value.param == param


def test_events_page_both_ways_and_report_pending_webhooks(stripe_server):
    session = checkout_session(created=T0)
    for n in range(5):
        stripe_server.add_event("checkout.session.completed", session, id=f"evt_{n}",
                                created=T0 + n, pending_webhooks=n % 2)
    client = client_for(stripe_server)
    first = client.v1.events.list(params={"limit": 2})
    assert [e.id for e in first.data] == ["evt_4", "evt_3"] and first.has_more
    assert [e.pending_webhooks for e in first.data] == [0, 1]
    after = client.v1.events.list(params={"limit": 2, "starting_after": "evt_3"})
    assert [e.id for e in after.data] == ["evt_2", "evt_1"] and after.has_more
    before = client.v1.events.list(params={"limit": 2, "ending_before": "evt_1"})
    assert [e.id for e in before.data] == ["evt_3", "evt_2"] and before.has_more
    assert [e.id for e in client.v1.events.list(params={"delivery_success": False}).data] == \
        ["evt_3", "evt_1"]
    window = client.v1.events.list(params={"created": {"gte": T0 + 1, "lte": T0 + 3}})
    assert [e.id for e in window.data] == ["evt_3", "evt_2", "evt_1"]
