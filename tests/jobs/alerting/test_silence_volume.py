"""Silence for every volume: an app with a few dozen events a day is told its endpoint went
quiet within the documented bound (the same time of the week over the last four weeks says
how many events the silence usually holds), and a weekend lull pages nobody."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from core.settings import get_settings
from jobs.alerting import lifecycle
from jobs.alerting.rules import RULES
from jobs.health.verdict import status
from tests.support.factories import add_event

MONDAY = datetime(2026, 11, 16, tzinfo=timezone.utc)  # a Monday, 00:00 UTC


def silence_at(db, now):
    with db.connect() as conn:
        return lifecycle.judge(conn, RULES["silence"], now=now, settings=get_settings())


def test_twenty_events_a_day_going_silent_fire_within_twelve_hours(db):
    gap = timedelta(hours=24) / 20  # 72 min
    last = MONDAY + timedelta(hours=10)
    with db.begin() as conn:
        moment = last - timedelta(weeks=5)
        while moment <= last:
            add_event(conn, created_at=moment, duration_ms=50, event_type="customer.created")
            moment += gap
    # The documented bound: MONITOR_ALERT_SILENCE_FACTOR (10) x the usual gap (72 min) = 12 h.
    assert silence_at(db, last + timedelta(hours=11, minutes=50)) == []
    [condition] = silence_at(db, last + timedelta(hours=12, minutes=10))
    assert condition.severity == "critical" and condition.details["weeks"] == 4
    assert condition.summary == ("No webhook event for 12.2 h (at this time of the week 10 events usually "
                                 "arrive in that time)")
    # the status verdict says so too
    assert status(db, now=last + timedelta(hours=12, minutes=10), settings=get_settings()).state == "down"


def weekday_traffic(conn, *, weeks: int, until: datetime):
    """20 events on every weekday, 08:00 to 17:30 UTC every 30 minutes; none at weekends."""
    day = until - timedelta(weeks=weeks)
    while day < until:
        if day.weekday() < 5:
            for n in range(20):
                moment = day + timedelta(hours=8, minutes=30 * n)
                if moment < until:
                    add_event(conn, created_at=moment, duration_ms=50, event_type="customer.created")
        day += timedelta(days=1)


def test_a_weekend_lull_pages_nobody_and_a_silent_monday_does(db):
    with db.begin() as conn:
        weekday_traffic(conn, weeks=5, until=MONDAY)  # last event: Friday 17:30
    saturday_noon, sunday_evening = MONDAY - timedelta(hours=36), MONDAY - timedelta(hours=6)
    assert silence_at(db, saturday_noon) == []
    assert silence_at(db, sunday_evening) == []
    # Monday: 08:00 to 11:30 usually brings 8 events, to 13:30 twelve (at least 10: silent).
    assert silence_at(db, MONDAY + timedelta(hours=12)) == []
    [condition] = silence_at(db, MONDAY + timedelta(hours=14))
    assert condition.details["expected_events"] == 12


def test_a_new_installation_without_weeks_of_history_stays_quiet(db):
    with db.begin() as conn:
        for n in range(20):
            add_event(conn, created_at=MONDAY - timedelta(hours=n), duration_ms=50, event_type="customer.created")
    assert silence_at(db, MONDAY + timedelta(days=2)) == []
