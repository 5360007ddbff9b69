"""Alert delivery to real servers on 127.0.0.1: the generic webhook (signed), Slack's incoming
webhook (Block Kit), e-mail over SMTP; a channel that is down is retried and recorded while
the others deliver; several deliverers never send one notification twice."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import stripe

from core.settings import get_settings
from devharness.http_sink import HttpSink
from jobs.alerting import lifecycle
from jobs.alerting import notify as delivery
from jobs.alerting.channels import SlackChannel, WebhookChannel
from tests.support.factories import add_event

SECRET = "whsec_alert_test_secret"
DASHBOARD = "https://monitor.example.com/"


def now_utc():
    return datetime.now(timezone.utc)


def fire_payment_alert(engine, now, channels, event_type="checkout.session.completed"):
    with engine.begin() as conn:
        event_id = add_event(conn, created_at=now - timedelta(seconds=2), status="failed", event_type=event_type,
                             error="registration <b>not</b> found")
    lifecycle.evaluate(engine, now=now, settings=get_settings(), channels=list(channels))
    return event_id


def rows(engine, sql="SELECT channel, kind, status, attempts, error, next_attempt_at, attempt_log, sent_at "
                     "FROM alert_notifications ORDER BY channel, id"):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]


def test_webhook_gets_the_contract_body_signed_with_monitor_signature(db):
    now = now_utc()
    with HttpSink() as sink:
        channels = {"webhook": WebhookChannel(sink.url, SECRET)}
        fire_payment_alert(db, now, channels)
        report = delivery.deliver(db, now=now, channels=channels, dashboard_url=DASHBOARD)
        assert report.sent == 1 and report.failed == 0
        [request] = sink.wait_for(1)
    body = request.json()
    assert set(body) == {"alert_id", "rule", "status", "severity", "summary", "started_at", "fired_at",
                         "resolved_at", "details", "url"}
    assert body["rule"] == "payment_event_failed" and body["status"] == "firing" and body["severity"] == "critical"
    assert body["url"] == "https://monitor.example.com/errors" and body["resolved_at"] is None
    assert body["fired_at"].endswith("Z") and body["details"]["failed"] == 1
    # Stripe's scheme: the stripe library's own verifier accepts it.
    header = request.headers["Monitor-Signature"]
    assert header.startswith("t=") and ",v1=" in header
    stripe.WebhookSignature.verify_header(request.body.decode(), header, SECRET, tolerance=300)
    [row] = rows(db)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"] is not None
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT last_notified_at FROM alerts")).scalar() is not None


def test_webhook_without_secret_is_unsigned(db):
    now = now_utc()
    with HttpSink() as sink:
        channels = {"webhook": WebhookChannel(sink.url)}
        fire_payment_alert(db, now, channels)
        delivery.deliver(db, now=now, channels=channels, dashboard_url=None)
        [request] = sink.wait_for(1)
    assert "Monitor-Signature" not in request.headers and request.json()["url"] is None


def test_slack_gets_block_kit_with_severity_numbers_and_a_dashboard_link(db):
    now = now_utc()
    with HttpSink() as sink:
        channels = {"slack": SlackChannel(sink.url)}
        fire_payment_alert(db, now, channels)
        assert delivery.deliver(db, now=now, channels=channels, dashboard_url=DASHBOARD).sent == 1
        [request] = sink.wait_for(1)
    body = request.json()
    assert body["text"].startswith("[CRITICAL] payment_event_failed:")
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "context", "actions"]
    assert "Critical" in body["blocks"][0]["text"]["text"]
    fields = body["blocks"][1]["fields"]
    assert "failed: 1" in [f["text"] for f in fields]
    # Outside text (the error message) is plain text: shown as written, never as markup or links.
    assert {f["type"] for f in fields} == {"plain_text"} and body["blocks"][1]["text"]["type"] == "plain_text"
    assert "last_error: registration <b>not</b> found" in [f["text"] for f in fields]
    assert body["blocks"][3]["elements"][0]["url"] == "https://monitor.example.com/errors"


def test_a_channel_that_is_down_is_retried_and_recorded_while_the_others_deliver(db):
    now = now_utc()
    with HttpSink(status=503) as down, HttpSink() as up:
        channels = {"webhook": WebhookChannel(down.url), "slack": SlackChannel(up.url)}
        fire_payment_alert(db, now, channels)
        report = delivery.deliver(db, now=now, channels=channels, dashboard_url=None, wait_multiplier=0.01)
        assert up.wait_for(1) and down.attempts == 3
        assert report.sent == 1 and report.failed == 1
        slack, webhook = rows(db)
        assert slack["status"] == "sent"
        assert webhook["status"] == "failed" and webhook["attempts"] == 3 and "503" in webhook["error"]
        assert [entry["ok"] for entry in webhook["attempt_log"]] == [False, False, False]
        assert webhook["next_attempt_at"] > now
        # Not due yet: nothing is tried.
        assert delivery.deliver(db, now=now + timedelta(seconds=1), channels=channels, dashboard_url=None).deliveries == []
        # The channel comes back: the next claim after the backoff delivers it.
        down.status = 200
        later = webhook["next_attempt_at"] + timedelta(seconds=1)
        report = delivery.deliver(db, now=later, channels=channels, dashboard_url=None, wait_multiplier=0.01)
        assert report.sent == 1 and len(down.wait_for(1)) == 1
    webhook = rows(db)[1]
    assert webhook["status"] == "sent" and webhook["attempts"] == 4 and webhook["next_attempt_at"] is None
    assert len(up.received) == 1  # the channel that worked was not sent again


def test_concurrent_deliverers_send_each_notification_once(db, engine):
    now = now_utc()
    with HttpSink() as sink:
        channels = {"webhook": WebhookChannel(sink.url)}
        for i in range(10):
            fire_payment_alert(db, now, channels, event_type=f"checkout.session.type_{i}")
        barrier = threading.Barrier(4)

        def deliverer(n):
            barrier.wait()
            delivery.deliver(engine, now=now, channels=channels, dashboard_url=None, host=f"process-{n}", limit=3)
            delivery.deliver(engine, now=now, channels=channels, dashboard_url=None, host=f"process-{n}", limit=10)

        threads = [threading.Thread(target=deliverer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received = sink.wait_for(10)
    assert sorted(r.json()["alert_id"] for r in received) == sorted({r.json()["alert_id"] for r in received})
    assert len(received) == 10


def test_resolved_message_after_the_event_completes(db):
    now = now_utc()
    with HttpSink() as sink:
        channels = {"webhook": WebhookChannel(sink.url)}
        event_id = fire_payment_alert(db, now, channels)
        delivery.deliver(db, now=now, channels=channels, dashboard_url=None)
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed' "
                                 "WHERE stripe_event_id = :id"), {"id": event_id})
        later = now + timedelta(seconds=10)
        lifecycle.evaluate(db, now=later, settings=get_settings(), channels=list(channels))
        delivery.deliver(db, now=later, channels=channels, dashboard_url=None)
        first, second = sink.wait_for(2)
    assert first.json()["status"] == "firing"
    assert second.json()["status"] == "resolved" and second.json()["resolved_at"] is not None
    assert second.json()["alert_id"] == first.json()["alert_id"]


def test_email_is_sent_as_text_and_html_through_smtp(db):
    from devharness.smtp import SmtpServer
    from jobs.alerting.channels import EmailChannel

    now = now_utc()
    with SmtpServer() as smtp:
        channels = {"email": EmailChannel(smtp.url, "monitor@example.com", ["ops@example.com", "cto@example.com"])}
        fire_payment_alert(db, now, channels)
        assert delivery.deliver(db, now=now, channels=channels, dashboard_url=DASHBOARD).sent == 1
        [(_sender, recipients, _raw)] = smtp.envelopes
        [mail] = smtp.messages
    assert recipients == ["ops@example.com", "cto@example.com"]
    assert mail["Subject"].startswith("[CRITICAL] payment_event_failed:")
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Dashboard: https://monitor.example.com/errors" in text
    assert "&lt;b&gt;not&lt;/b&gt;" in html and "<b>not</b>" not in html


def test_email_channel_comes_from_the_settings(monkeypatch):
    from core.settings import get_settings
    from jobs.alerting.channels import EmailChannel, from_settings

    monkeypatch.setenv("MONITOR_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.setenv("MONITOR_EMAIL_FROM", "monitor@example.com")
    monkeypatch.setenv("MONITOR_ALERT_EMAIL_TO", "ops@example.com, cto@example.com")
    channel = from_settings(get_settings())["email"]
    assert isinstance(channel, EmailChannel) and channel.recipients == ["ops@example.com", "cto@example.com"]
