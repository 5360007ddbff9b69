"""The PagerDuty channel against a local Events API v2 server that checks every event
against the v2 schema: trigger, acknowledge from the dashboard, resolve, one dedup_key per
alert fingerprint; retried like the other channels when PagerDuty is unwell."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.settings import get_settings
from devharness import patched_env
from devharness.http_sink import HttpSink
from jobs.alerting import actions, lifecycle, watch
from jobs.alerting import notify as delivery
from jobs.alerting.channels import DeliveryError, WebhookChannel
from jobs.alerting.pagerduty import PagerDutyChannel
from tests.support.factories import add_event
from tests.support.pagerduty_server import pagerduty_server, schema_errors

KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12"
DASHBOARD = "https://monitor.example.com/"


def now_utc():
    return datetime.now(timezone.utc)


def fail_checkout(engine, now) -> str:
    with engine.begin() as conn:
        return add_event(conn, created_at=now - timedelta(seconds=2), status="failed", error="boom",
                         event_type="checkout.session.completed")


def test_trigger_acknowledge_resolve_share_the_alerts_fingerprint_as_dedup_key(db):
    now = now_utc()
    with pagerduty_server() as pd, HttpSink() as hook:
        channels = {"pagerduty": PagerDutyChannel(KEY, pd.url, source="monitor-host"),
                    "webhook": WebhookChannel(hook.url)}
        event_id = fail_checkout(db, now)
        fired = lifecycle.evaluate(db, now=now, settings=get_settings(), channels=list(channels))
        [alert] = fired.fired
        assert delivery.deliver(db, now=now, channels=channels, dashboard_url=DASHBOARD).failed == 0
        [trigger] = pd.wait_for(1)

        actions.acknowledge(db, alert["id"], actor="ana@example.com", now=now + timedelta(seconds=5))
        assert delivery.deliver(db, now=now + timedelta(seconds=5), channels=channels,
                                dashboard_url=DASHBOARD).sent == 1  # PagerDuty only

        with db.begin() as conn:
            conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed' "
                                 "WHERE stripe_event_id = :id"), {"id": event_id})
        later = now + timedelta(seconds=10)
        assert lifecycle.evaluate(db, now=later, settings=get_settings(), channels=list(channels)).resolved
        assert delivery.deliver(db, now=later, channels=channels, dashboard_url=DASHBOARD).failed == 0
        trigger, acknowledge, resolve = pd.wait_for(3)
        assert len(hook.wait_for(2)) == 2  # the webhook: fired and resolved, no acknowledgement

    assert pd.attempts == 3  # every event passed the schema at the first try
    body = trigger.json()
    assert body["event_action"] == "trigger" and body["routing_key"] == KEY
    assert body["dedup_key"] == "payment_event_failed:checkout.session.completed" == alert["fingerprint"]
    assert body["payload"]["severity"] == "critical" and body["payload"]["source"] == "monitor-host"
    assert body["payload"]["summary"].startswith("payment_event_failed: 1 failed checkout.session.completed event")
    assert body["payload"]["custom_details"]["failed"] == 1
    assert body["links"] == [{"href": "https://monitor.example.com/errors", "text": "Open in the webhook monitor"}]
    assert acknowledge.json() == {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": body["dedup_key"]}
    assert resolve.json() == {"routing_key": KEY, "event_action": "resolve", "dedup_key": body["dedup_key"]}


def test_severity_is_mapped_and_a_warning_pages_as_a_warning(db):
    now = now_utc()
    with db.begin() as conn:
        add_event(conn, created_at=now - timedelta(hours=1), status="processing")  # stuck: a warning
    with pagerduty_server() as pd:
        channels = {"pagerduty": PagerDutyChannel(KEY, pd.url)}
        lifecycle.evaluate(db, now=now, settings=get_settings(), channels=list(channels))
        delivery.deliver(db, now=now, channels=channels, dashboard_url=None)
        [trigger] = pd.wait_for(1)
    body = trigger.json()
    assert body["payload"]["severity"] == "warning" and body["dedup_key"] == "stuck_events"
    assert "links" not in body  # no MONITOR_DASHBOARD_URL, no link


def test_pagerduty_unwell_is_retried_like_any_channel_and_delivered_when_it_is_back(db):
    now = now_utc()
    with pagerduty_server(status=503) as pd:
        channels = {"pagerduty": PagerDutyChannel(KEY, pd.url)}
        fail_checkout(db, now)
        lifecycle.evaluate(db, now=now, settings=get_settings(), channels=list(channels))
        report = delivery.deliver(db, now=now, channels=channels, dashboard_url=DASHBOARD, wait_multiplier=0.01)
        assert report.failed == 1 and pd.attempts == delivery.ATTEMPTS_PER_CLAIM
        with db.connect() as conn:
            row = conn.execute(sa.text("SELECT status, error, next_attempt_at FROM alert_notifications")).one()
        assert row.status == "failed" and "pagerduty 127.0.0.1 answered 503" in row.error
        pd.status = 202
        report = delivery.deliver(db, now=row.next_attempt_at, channels=channels, dashboard_url=DASHBOARD)
        assert report.sent == 1 and pd.wait_for(1)[0].json()["event_action"] == "trigger"


def test_an_event_pagerduty_refuses_is_an_error_naming_the_field():
    with pagerduty_server() as pd:
        channel = PagerDutyChannel(KEY, pd.url)
        with pytest.raises(DeliveryError, match="answered 400.*severity"):
            channel.send({"routing_key": KEY, "event_action": "trigger", "dedup_key": "x",
                          "payload": {"summary": "s", "source": "h", "severity": "fatal"}})
    # The stand-in refuses what PagerDuty documents as invalid.
    assert schema_errors({"routing_key": KEY, "event_action": "trigger"})  # no payload
    assert schema_errors({"routing_key": KEY, "event_action": "resolve"})  # no dedup_key
    assert schema_errors({"routing_key": KEY, "event_action": "trigger", "dedup_key": "x" * 256,
                          "payload": {"summary": "s", "source": "h", "severity": "info"}})


def test_the_routing_key_setting_adds_the_channel_to_watch():
    with patched_env(MONITOR_ALERT_PAGERDUTY_ROUTING_KEY=KEY, MONITOR_ALERT_PAGERDUTY_URL=None):
        channels = watch.settings_channels(get_settings())
    channel = channels["pagerduty"]
    assert channel.routing_key == KEY and channel.url == "https://events.pagerduty.com/v2/enqueue"
