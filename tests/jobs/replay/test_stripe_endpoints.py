"""Stripe's view of the webhook endpoints: local_stripe serves them as the pinned API version
does (and disables one as Stripe's API does), the sweep records them, and the rules
endpoint_disabled and endpoint_misconfigured page through every channel and resolve."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
import stripe

from core.settings import DEFAULT_SWEEP_EVENT_TYPES, get_settings, sweep_event_types
from core.stripe_api import API_VERSION
from devharness import patched_env
from devharness.http_sink import HttpSink
from devharness.smtp import SmtpServer
from jobs.alerting import watch
from jobs.replay import stripe_endpoints, sweep
from jobs.stripe_gateway import gateway_from_settings
from local_stripe import LIST_WEBHOOK_ENDPOINTS, webhook_endpoint
from tests.support.pagerduty_server import pagerduty_server
from tests.support.stripe_schema import errors
from tests.support.stripe_server import API_KEY

APP_URL = "https://app.example.com/api/stripe-webhook"
NEEDED = sweep_event_types(DEFAULT_SWEEP_EVENT_TYPES)


def run_sweep(db, now, *, endpoint_url=APP_URL):
    gateway = gateway_from_settings(rate_limit_backoff_s=0.02, requests_per_second=0)
    return sweep.run(db, now=now, gateway=gateway, event_types=NEEDED, lookback_hours=1, endpoint_url=endpoint_url)


def client(stripe_server) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": stripe_server.url})


def test_local_stripe_serves_webhook_endpoints_as_the_pinned_version_and_disables_one(stripe_server):
    app = stripe_server.state.add_webhook_endpoint(webhook_endpoint(APP_URL, enabled_events=NEEDED))
    stripe_server.state.add_webhook_endpoint(webhook_endpoint("https://other.example.com/hook", api_version=None))
    request = urllib.request.Request(stripe_server.url + "/v1/webhook_endpoints?limit=100",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request) as response:
        listed = json.loads(response.read())
    assert listed["object"] == "list" and listed["url"] == "/v1/webhook_endpoints" and len(listed["data"]) == 2
    for endpoint in listed["data"]:
        assert errors(endpoint, "webhook_endpoint") == [], endpoint["id"]
    assert any("secret_word" in e for e in errors({**app, "secret_word": 1}, "webhook_endpoint"))

    # The stripe library's own update call, as an operator (or Stripe) disables an endpoint.
    updated = client(stripe_server).v1.webhook_endpoints.update(app["id"], {"disabled": True})
    assert updated.status == "disabled"
    assert client(stripe_server).v1.webhook_endpoints.retrieve(app["id"]).status == "disabled"
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: status"):
        client(stripe_server).v1.webhook_endpoints.list({"status": "enabled"})


@pytest.mark.parametrize("enabled, version, url, expected", [
    (["*"], API_VERSION, APP_URL, (True, [], False)),
    (NEEDED, API_VERSION, APP_URL + "/", (True, [], False)),  # a trailing slash is the same URL
    (["checkout.session.completed"], API_VERSION, APP_URL, (True, [t for t in NEEDED if t != "checkout.session.completed"], False)),
    (["*"], "2024-06-20", APP_URL, (True, [], True)),
    (["*"], None, APP_URL, (True, [], False)),  # the account's default version: not known, not claimed
    (["*"], API_VERSION, "https://other.example.com/hook", (False, [], False)),
])
def test_judge(enabled, version, url, expected):
    verdict = stripe_endpoints.judge(webhook_endpoint(url, enabled_events=enabled, api_version=version),
                                     needed=NEEDED, endpoint_url=APP_URL)
    assert (verdict.watched, verdict.missing_events, verdict.api_version_mismatch) == expected


def test_a_group_is_covered_by_any_type_of_it():
    assert stripe_endpoints.covers(["checkout.session.completed"], "checkout.session.*")
    assert not stripe_endpoints.covers(["invoice.paid"], "checkout.session.*")


def test_a_disabled_endpoint_pages_every_channel_and_re_enabling_resolves_it(db, stripe_server):
    app = stripe_server.state.add_webhook_endpoint(webhook_endpoint(APP_URL, enabled_events=NEEDED))
    stripe_server.state.add_webhook_endpoint(webhook_endpoint("https://old.example.com/hook", status="disabled"))
    now = datetime.now(timezone.utc)
    with HttpSink() as hook, HttpSink() as slack, SmtpServer() as smtp, pagerduty_server() as pd, patched_env(
            MONITOR_ALERT_WEBHOOK_URL=hook.url, MONITOR_ALERT_SLACK_WEBHOOK_URL=slack.url,
            MONITOR_SMTP_URL=smtp.url, MONITOR_EMAIL_FROM="monitor@example.com",
            MONITOR_ALERT_EMAIL_TO="ops@example.com", MONITOR_ALERT_PAGERDUTY_ROUTING_KEY="k" * 32,
            MONITOR_ALERT_PAGERDUTY_URL=pd.url, MONITOR_DASHBOARD_URL="https://monitor.example.com"):
        settings = get_settings()
        channels = watch.settings_channels(settings)
        assert set(channels) == {"webhook", "slack", "email", "pagerduty"}

        report = run_sweep(db, now)  # enabled: the other, disabled endpoint is not the app's
        assert report.endpoints == {"seen": 2, "watched": 1, "disabled": [], "misconfigured": [], "error": None}
        assert not watch.run_once(db, now=now, settings=settings, channels=channels).evaluation.fired

        client(stripe_server).v1.webhook_endpoints.update(app["id"], {"disabled": True})
        later = now + timedelta(minutes=5)
        assert run_sweep(db, later).endpoints["disabled"] == [APP_URL]
        fired = watch.run_once(db, now=later, settings=settings, channels=channels)
        [alert] = fired.evaluation.fired
        assert alert["rule"] == "endpoint_disabled" and alert["severity"] == "critical"
        assert fired.delivery.sent == 4 and fired.delivery.failed == 0

        client(stripe_server).v1.webhook_endpoints.update(app["id"], {"disabled": False})
        again = later + timedelta(minutes=5)
        run_sweep(db, again)
        resolved = watch.run_once(db, now=again, settings=settings, channels=channels)
        assert [a["rule"] for a in resolved.evaluation.resolved] == ["endpoint_disabled"]
        assert resolved.delivery.sent == 4

        fired_hook, resolved_hook = (r.json() for r in hook.wait_for(2))
        assert len(slack.wait_for(2)) == 2 and len(smtp.messages) == 2
        trigger, resolve = (r.json() for r in pd.wait_for(2))
    assert fired_hook["rule"] == "endpoint_disabled" and APP_URL in fired_hook["summary"]
    assert fired_hook["url"] == "https://monitor.example.com/health" and resolved_hook["status"] == "resolved"
    assert "[CRITICAL] endpoint_disabled" in smtp.messages[0]["Subject"]
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "critical"
    assert resolve == {"routing_key": "k" * 32, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert trigger["dedup_key"] == f"endpoint_disabled:{app['id']}"


def test_a_misconfigured_endpoint_warns_with_what_is_wrong(db, stripe_server):
    stripe_server.state.add_webhook_endpoint(webhook_endpoint(
        APP_URL, enabled_events=["checkout.session.completed"], api_version="2024-06-20.acacia"))
    now = datetime.now(timezone.utc)
    assert run_sweep(db, now, endpoint_url=None).endpoints["misconfigured"] == [APP_URL]
    evaluation = watch.run_once(db, now=now, settings=get_settings(), channels={}).evaluation
    [alert] = [a for a in evaluation.fired if a["rule"] == "endpoint_misconfigured"]
    assert alert["severity"] == "warning"
    assert "does not receive " in alert["summary"] and "checkout.session.expired" in alert["summary"]
    assert "checkout.session.completed" not in alert["summary"]
    assert f"sends events in API version 2024-06-20.acacia, not {API_VERSION}" in alert["summary"]


def test_a_key_without_the_permission_is_reported_and_the_sweep_goes_on(db, stripe_server):
    stripe_server.fail_next(1, status=403, endpoint=LIST_WEBHOOK_ENDPOINTS)
    report = run_sweep(db, datetime.now(timezone.utc))
    assert report.status == "completed"
    assert "Webhook Endpoints: Read" in report.endpoints["error"]
