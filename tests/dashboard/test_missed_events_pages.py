"""Missed events on the dashboard: the Overview's alert (money at risk first) and the Events
page's "never arrived" filter, on rows the sweep writes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa

from dashboard import metrics
from tests.support.apptest import open_dashboard
from tests.support.factories import add_event

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def add_missed(conn, event_id: str, *, amount: int | None, currency: str | None,
               status: str = "missing", age: timedelta = timedelta(hours=3)) -> None:
    run_id = conn.execute(sa.text("""
        INSERT INTO sweep_runs (status, lookback_hours, window_start, window_end, started_at)
        VALUES ('needs_review', 72, :start, :now, :now) RETURNING id"""),
        {"start": NOW - timedelta(hours=72), "now": NOW}).scalar_one()
    created = NOW - age
    conn.execute(sa.text("""
        INSERT INTO missed_events (stripe_event_id, event_type, stripe_created_at, status, found_at,
            sweep_run_id, last_seen_at, amount, currency, retry_deadline, retention_deadline, payload)
        VALUES (:id, 'checkout.session.completed', :created, :status, :now, :run, :now, :amount,
                :currency, :created + interval '3 days', :created + interval '30 days', '{}'::jsonb)"""),
        {"id": event_id, "created": created, "status": status, "now": NOW, "run": run_id,
         "amount": amount, "currency": currency})


def test_the_alert_names_the_money_at_risk_and_the_oldest():
    summary = {"open_events": 3, "oldest_at": NOW - timedelta(hours=26),
               "first_forgotten_at": NOW + timedelta(days=28)}
    text = metrics.missed_events_alert(summary, [{"amount": 4200, "currency": "eur"},
                                                 {"amount": 1500, "currency": "jpy"}], NOW)
    assert text.startswith("**3 events Stripe sent never reached the app**")
    assert "money at risk: 42.00 EUR, 1,500 JPY; oldest 26 h ago." in text
    assert metrics.missed_events_alert({"open_events": 0}, [], NOW) is None
    assert metrics.missed_events_alert({"open_events": 1, "oldest_at": pd.NaT,
                                        "first_forgotten_at": pd.NaT}, [], NOW).startswith("**1 event ")


def test_overview_shows_open_missed_events_even_with_no_event_recorded(db, login_off):
    with db.begin() as conn:
        add_missed(conn, "evt_missed_1", amount=4200, currency="eur")
        add_missed(conn, "evt_missed_2", amount=None, currency=None)
        add_missed(conn, "evt_done", amount=9900, currency="eur", status="recovered")
    at = open_dashboard("views/overview/page.py")
    assert not at.exception, at.exception
    shown = [e.value for e in at.error]
    assert len(shown) == 1 and "2 events Stripe sent never reached the app" in shown[0]
    assert "42.00 EUR" in shown[0] and "99.00" not in shown[0]


def test_events_page_filters_to_the_events_that_never_arrived(db, login_off):
    with db.begin() as conn:
        add_event(conn, created_at=NOW - timedelta(hours=1))
        add_missed(conn, "evt_never_came", amount=2500, currency="usd")
        add_missed(conn, "evt_long_ago", amount=2500, currency="usd", age=timedelta(days=20))
    at = open_dashboard("views/events/page.py")
    at.toggle(key="events_missed").set_value(True).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["stripe_event_id"]) == ["evt_never_came"]  # the 24h window
    assert list(table["amount_shown"]) == ["25.00 USD"]
