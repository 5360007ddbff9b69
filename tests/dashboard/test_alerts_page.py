"""The Alerts page, the critical-alert banner on every page, and the alert actions
(acknowledge, silence) recorded with who did them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from dashboard import auth, data
from dashboard.components.text import markdown_literal
from dashboard.views.alerts import figures as af
from jobs.alerting import actions, lifecycle
from tests.support.apptest import open_dashboard
from tests.support.factories import add_event


def now_utc():
    return datetime.now(timezone.utc)


def fire(engine, now, *, error="boom", event_type="checkout.session.completed", channels=("webhook",)):
    with engine.begin() as conn:
        add_event(conn, created_at=now - timedelta(seconds=3), status="failed", error=error, event_type=event_type)
    return lifecycle.evaluate(engine, now=now, settings=get_settings(), channels=list(channels))


def test_alerts_page_on_an_empty_database_says_alerting_is_off(db, login_off):
    at = open_dashboard("views/alerts/page.py")
    assert not at.exception, at.exception
    assert any("Alerting is off" in w.value and "never ran" in w.value for w in at.warning)
    assert not any("Nothing is firing" in s.value for s in at.success)


def test_alerts_page_with_a_watcher_running_and_nothing_firing(db, login_off):
    lifecycle.evaluate(db, now=now_utc(), settings=get_settings(), channels=[])  # what `watch` does
    at = open_dashboard("views/alerts/page.py")
    assert not at.exception, at.exception
    assert not [w for w in at.warning if "Alerting is off" in w.value]
    assert any("Nothing is firing" in s.value for s in at.success)


def test_firing_alert_shows_on_the_page_with_history_and_deliveries(db, login_off):
    now = now_utc()
    fire(db, now)
    at = open_dashboard("views/alerts/page.py")
    assert not at.exception, at.exception
    firing, history = at.dataframe[0].value, at.dataframe[1].value
    assert list(firing["rule"]) == ["payment_event_failed"] and list(firing["severity"]) == ["critical"]
    assert list(history["status"]) == ["firing"]
    assert history["time_to_detect"].iloc[0].endswith("s")
    deliveries = at.dataframe[2].value
    assert list(deliveries["channel"]) == ["webhook"] and list(deliveries["status"]) == ["pending"]
    assert any(m.label == "Alerts fired" and m.value == "1" for m in at.metric)


def test_banner_on_every_page_while_a_critical_alert_fires(db, login_off):
    at = open_dashboard("views/overview/page.py")
    assert not [e for e in at.error if "critical alert" in e.value]
    fire(db, now_utc())
    for page in ("views/overview/page.py", "views/events/page.py", "views/alerts/page.py"):
        at = open_dashboard(page)
        banners = [e.value for e in at.error if "critical alert is firing" in e.value]
        assert banners and markdown_literal("payment_event_failed") in banners[0], page


def test_banner_shows_outside_text_as_text():
    critical = pd.DataFrame([{"rule": "job_failed", "summary": "[click](http://evil.example) **now** <b>x</b>",
                              "acknowledged_by": None}])
    text = af.banner_text(critical)
    assert markdown_literal("[click](http://evil.example) **now** <b>x</b>") in text


def test_banner_text_counts_several_alerts():
    critical = pd.DataFrame([{"rule": "silence", "summary": "quiet", "acknowledged_by": "ana"},
                             {"rule": "payment_event_failed", "summary": "x", "acknowledged_by": None}])
    text = af.banner_text(critical)
    assert text.startswith("**2 critical alerts firing**") and "(and 1 more)" in text and "ana" in text
    assert af.banner_text(critical.iloc[0:0]) is None


def test_acknowledge_is_recorded_and_stops_reminders(db):
    now = now_utc()
    report = fire(db, now)
    alert_id = report.fired[0]["id"]
    with pytest.raises(actions.AlertActionRefused, match="say who you are"):
        actions.acknowledge(db, alert_id, actor="  ", now=now)
    actions.acknowledge(db, alert_id, actor="ana@example.com", now=now)
    with pytest.raises(actions.AlertActionRefused, match="acknowledged already"):
        actions.acknowledge(db, alert_id, actor="bob", now=now)
    with db.connect() as conn:
        row = conn.execute(sa.text("SELECT acknowledged_by, acknowledged_at FROM alerts")).one()
    assert row.acknowledged_by == "ana@example.com" and row.acknowledged_at == now
    lifecycle.evaluate(db, now=now + timedelta(hours=5), settings=get_settings(), channels=["webhook"])
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alert_notifications WHERE kind = 'reminder'")).scalar() == 0


def test_silence_is_recorded_with_who_and_until_and_can_be_ended(db):
    now = now_utc()
    fingerprint = "payment_event_failed:checkout.session.completed"
    with pytest.raises(actions.AlertActionRefused, match="at most 30 days"):
        actions.silence(db, fingerprint, duration=timedelta(days=31), actor="ana", now=now)
    actions.silence(db, fingerprint, duration=timedelta(hours=4), actor="ana", now=now, reason="deploying the fix")
    fire(db, now)
    with db.connect() as conn:
        silence = conn.execute(sa.text("SELECT created_by, until, reason FROM alert_silences")).one()
        assert conn.execute(sa.text("SELECT count(*) FROM alert_notifications")).scalar() == 0
    assert silence.created_by == "ana" and silence.until == now + timedelta(hours=4)
    assert silence.reason == "deploying the fix"
    assert actions.end_silence(db, fingerprint, now=now + timedelta(minutes=1)) == 1
    lifecycle.evaluate(db, now=now + timedelta(minutes=2), settings=get_settings(), channels=["webhook"])
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT kind FROM alert_notifications")).scalars().all() == ["firing"]


PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "alerts" / "page.py")


def page(identity: str | None = "ana@example.com") -> AppTest:
    """The Alerts page as a session logged in as ``identity`` (what the entry script's login sets)."""
    data.refresh()
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.user = {"is_logged_in": True, "email": "ana@example.com"}
    if identity is not None:
        at.session_state[auth.IDENTITY_KEY] = identity
    return at


def test_acknowledge_and_silence_from_the_page_are_recorded_with_the_logged_in_identity(db):
    now = now_utc()
    fire(db, now)
    at = page().run()
    assert not at.text_input or all("Reason" in t.label for t in at.text_input)  # no typed name
    assert any(markdown_literal("ana@example.com") in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    assert not at.exception, at.exception
    assert any(f"acknowledged by {markdown_literal('ana@example.com')}" in s.value for s in at.success)
    at.text_input[0].input("deploying the fix")
    next(b for b in at.button if b.label == "Silence").click().run()
    assert not at.exception, at.exception
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT acknowledged_by FROM alerts")).scalar() == "ana@example.com"
        silence = conn.execute(sa.text("SELECT fingerprint, created_by, reason, until - created_at AS length "
                                       "FROM alert_silences")).one()
    assert silence.fingerprint == "payment_event_failed:checkout.session.completed"
    assert silence.created_by == "ana@example.com" and silence.length == timedelta(hours=4)
    assert silence.reason == "deploying the fix"
    assert list(at.dataframe[0].value["silenced_until"].notna()) == [True]


def test_acting_on_an_alert_needs_a_logged_in_identity(db):
    alert_id = fire(db, now_utc()).fired[0]["id"]
    at = page(identity=None).run()
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    assert any("Log in to change anything" in e.value for e in at.error)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT acknowledged_by FROM alerts WHERE id = :id"), {"id": alert_id}).scalar() is None
