"""The missed_events alert rule: fires critical with the money at risk first while the sweep's
missed events have no completed row, resolves once they are recovered."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from core.settings import get_settings
from jobs.alerting import lifecycle
from jobs.alerting.rules import RULES, missed_events
from tests.dashboard.test_missed_events_pages import add_missed

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_the_rule_puts_the_money_first():
    rows = [{"currency": "eur", "events": 2, "amount": 14100, "first_created_at": NOW - timedelta(hours=5),
             "first_found_at": NOW - timedelta(hours=1), "first_forgotten_at": NOW + timedelta(days=29),
             "example_event_ids": ["evt_a", "evt_b"]},
            {"currency": None, "events": 1, "amount": None, "first_created_at": NOW - timedelta(hours=2),
             "first_found_at": NOW, "first_forgotten_at": NOW + timedelta(days=30),
             "example_event_ids": ["evt_c"]}]
    [condition] = missed_events(rows, now=NOW, settings=get_settings())
    assert condition.severity == "critical"
    assert condition.summary.startswith("141.00 EUR at risk: 3 events Stripe sent never reached the app")
    assert condition.started_at == NOW - timedelta(hours=5)
    assert condition.details["money_at_risk"] == {"eur": 14100}
    assert condition.details["example_event_ids"] == ["evt_a", "evt_b", "evt_c"]
    assert missed_events([], now=NOW, settings=get_settings()) == []


def test_fires_while_missed_events_wait_and_resolves_when_recovered(db):
    with db.begin() as conn:
        add_missed(conn, "evt_rule_1", amount=4200, currency="eur")
    settings = get_settings()
    report = lifecycle.evaluate(db, now=NOW, settings=settings, channels=["webhook"],
                                rules={"missed_events": RULES["missed_events"]})
    assert [a["fingerprint"] for a in report.fired] == ["missed_events"]
    with db.connect() as conn:
        alert = conn.execute(sa.text("SELECT * FROM alerts")).mappings().one()
    assert alert["severity"] == "critical" and alert["summary"].startswith("42.00 EUR at risk")

    with db.begin() as conn:
        conn.execute(sa.text("UPDATE missed_events SET status = 'recovered', recovered_at = :n"), {"n": NOW})
    report = lifecycle.evaluate(db, now=NOW + timedelta(seconds=30), settings=settings, channels=["webhook"],
                                rules={"missed_events": RULES["missed_events"]})
    assert [r["fingerprint"] for r in report.resolved] == ["missed_events"]
