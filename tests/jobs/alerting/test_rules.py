"""The alert rules as pure functions: rows and ``now`` in, conditions out (tables of cases)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.settings import get_settings
from jobs.alerting.rules import RULES

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def judge(rule, rows, **overrides):
    return RULES[rule].evaluate(rows, now=NOW, settings=get_settings(**overrides))


@pytest.mark.parametrize("events, failed, expected", [
    (10, 5, None),            # fewer than MONITOR_ALERT_FAILURE_MIN_EVENTS (20)
    (100, 0, None),
    (100, 9, None),           # 9 % < 10 %
    (100, 10, "warning"),
    (100, 24, "warning"),
    (100, 25, "critical"),
    (20, 20, "critical"),
])
def test_failure_rate_thresholds(events, failed, expected):
    rows = [{"events": events, "failed": failed, "first_failed_at": NOW - timedelta(minutes=3)}]
    conditions = judge("failure_rate", rows)
    assert [c.severity for c in conditions] == ([expected] if expected else [])


def test_failure_rate_thresholds_are_settings():
    rows = [{"events": 50, "failed": 5, "first_failed_at": NOW}]
    assert judge("failure_rate", rows, MONITOR_ALERT_FAILURE_RATE_WARNING=0.2,
                 MONITOR_ALERT_FAILURE_RATE_CRITICAL=0.5) == []
    [condition] = judge("failure_rate", rows, MONITOR_ALERT_FAILURE_MIN_EVENTS=50)
    assert condition.summary == "10% of webhook events failed in the last 10 min (5 of 50)"


@pytest.mark.parametrize("baseline, silent_minutes, fires", [
    (1440, 29, False),   # a gap of 1 min x 10 = 10 min, but never before 30 min
    (1440, 31, True),
    (100, 140, False),   # 24 h / 100 = 14.4 min x 10 = 144 min
    (100, 145, True),
    (49, 10_000, False),  # no steady traffic to miss
])
def test_silence_needs_steady_traffic_and_a_long_gap(baseline, silent_minutes, fires):
    rows = [{"last_event_at": NOW - timedelta(minutes=silent_minutes), "baseline_events": baseline}]
    assert bool(judge("silence", rows)) is fires


def test_silence_without_any_event_says_nothing():
    assert judge("silence", [{"last_event_at": None, "baseline_events": 0}]) == []


@pytest.mark.parametrize("failed, without_retry, note", [
    (1, 1, "(no automatic retry will fix it)"),
    (3, 3, "(no automatic retry will fix them)"),
    (3, 1, "(1 without an automatic retry)"),
    (2, 0, "(a retry is planned)"),
])
def test_payment_event_failed_says_whether_a_retry_will_come(failed, without_retry, note):
    rows = [{"event_type": "checkout.session.completed", "failed": failed, "without_retry": without_retry,
             "next_retry_at": None, "first_failed_at": NOW - timedelta(seconds=2), "last_failed_at": NOW,
             "example_event_ids": ["evt_1"], "last_error": "x"}]
    [condition] = judge("payment_event_failed", rows)
    assert condition.severity == "critical" and condition.subject == "checkout.session.completed"
    assert condition.summary.endswith(note)
    assert RULES["payment_event_failed"].fingerprint(condition) == "payment_event_failed:checkout.session.completed"


def test_a_row_written_after_the_given_now_starts_the_condition_at_now():
    rows = [{"event_type": "checkout.session.expired", "failed": 1, "without_retry": 1, "next_retry_at": None,
             "first_failed_at": NOW + timedelta(hours=1), "last_failed_at": NOW + timedelta(hours=1),
             "example_event_ids": [], "last_error": None}]
    assert judge("payment_event_failed", rows)[0].started_at == NOW


def job_row(job="reconcile", status="completed", last_started=None, last_scheduled=None):
    return {"job": job, "last_status": status, "last_error": "boom" if status == "failed" else None,
            "last_done_started_at": last_started, "last_done_finished_at": last_started, "last_done_run_id": 1,
            "last_started_at": last_started, "last_scheduled_at": last_scheduled}


@pytest.mark.parametrize("row, fires", [
    # Scheduled daily at 03:00, due at 03:00 today, grace 30 min, now 12:00.
    (job_row(last_started=datetime(2026, 11, 29, 3, tzinfo=timezone.utc),
             last_scheduled=datetime(2026, 11, 29, 3, tzinfo=timezone.utc)), True),
    (job_row(last_started=datetime(2026, 11, 30, 3, tzinfo=timezone.utc),
             last_scheduled=datetime(2026, 11, 30, 3, tzinfo=timezone.utc)), False),
    # Never run by the scheduler (cron users): a missed time is not ours to judge.
    (job_row(last_started=datetime(2026, 11, 20, 3, tzinfo=timezone.utc)), False),
    # Not in the schedule at all.
    (job_row(job="health-report", last_started=datetime(2026, 11, 1, tzinfo=timezone.utc),
             last_scheduled=datetime(2026, 11, 1, tzinfo=timezone.utc)), False),
    (job_row(status="failed", last_started=datetime(2026, 11, 30, 3, tzinfo=timezone.utc)), True),
])
def test_job_failed_on_a_failed_run_or_a_missed_scheduled_time(row, fires):
    conditions = judge("job_failed", [row], MONITOR_SCHEDULE="reconcile=0 3 * * *")
    assert bool(conditions) is fires
    if fires:
        assert conditions[0].subject == row["job"] and conditions[0].severity == "warning"


def test_review_needed_splits_by_severity():
    rows = [{"kind": "completed_not_paid", "items": 2, "oldest_at": NOW, "example_item_ids": [1, 2]},
            {"kind": "amount_mismatch", "items": 1, "oldest_at": NOW, "example_item_ids": [3]},
            {"kind": "paid_but_failed", "items": 4, "oldest_at": NOW, "example_item_ids": [4]}]
    conditions = {c.subject: c for c in judge("review_needed", rows)}
    assert conditions["critical"].details["items"] == 2
    assert conditions["warning"].details["kinds"] == {"amount_mismatch": 1, "paid_but_failed": 4}


def test_silence_counts_the_baseline_exactly_at_its_edges(db):
    """The baseline is (last - hours, last]: an event exactly `hours` before the last one is
    out, the last one and those in partial edge hours are in, as a count over the rows."""
    import sqlalchemy as sa

    from core.sql import load_package
    from tests.support.factories import add_event

    last = datetime(2026, 11, 30, 11, 17, 5, tzinfo=timezone.utc)
    times = [last, last, last - timedelta(minutes=1), last - timedelta(hours=3, seconds=1),
             last - timedelta(hours=23, minutes=59), last - timedelta(hours=24),
             last - timedelta(hours=24, seconds=1)]
    with db.begin() as conn:
        for at in times:
            add_event(conn, created_at=at)
        add_event(conn, created_at=last + timedelta(minutes=5))   # at or after :until: not seen
    sql = load_package("jobs.alerting", "rules.sql")
    with db.connect() as conn:
        row = sql.one(conn, "silence", until=last + timedelta(minutes=5), baseline_hours=24, weeks=4)
        raw = conn.execute(sa.text("SELECT count(*) FROM webhook_events WHERE created_at > :l - interval '24 hours'"
                                   " AND created_at <= :l"), {"l": last}).scalar()
    assert row["last_event_at"] == last
    assert row["baseline_events"] == raw == 5


def test_payment_event_failed_counts_each_type_and_shows_its_five_newest(db):
    """The facts per failed checkout type: counts, retries, first and last failure, the five
    newest event ids newest first and the newest error; events of other types, older than
    the lookback, completed, or failed and then completed by a retry are not counted."""
    import sqlalchemy as sa

    from core.sql import load_package
    from tests.support.factories import add_event

    since = NOW - timedelta(hours=72)
    with db.begin() as conn:
        completed_ids = [add_event(conn, created_at=since + timedelta(hours=1, minutes=i), status="failed",
                                   duration_ms=250, error=f"handler error {i}",
                                   event_id=f"evt_completed_{i}") for i in range(7)]
        async_ids = [add_event(conn, created_at=since + timedelta(hours=30, minutes=i), status="failed",
                               event_type="checkout.session.async_payment_failed", duration_ms=100,
                               error=f"async error {i}", event_id=f"evt_async_{i}") for i in range(2)]
        conn.execute(sa.text("UPDATE webhook_events SET next_retry_at = :at WHERE stripe_event_id = :id"),
                     {"at": NOW + timedelta(minutes=10), "id": completed_ids[2]})
        add_event(conn, created_at=since - timedelta(seconds=1), status="failed", error="too old",
                  duration_ms=5)
        add_event(conn, created_at=since + timedelta(hours=2), status="failed", event_type="invoice.paid",
                  error="not a checkout", duration_ms=5)
        add_event(conn, created_at=since + timedelta(hours=2), status="completed", duration_ms=5)
        retried = add_event(conn, created_at=since + timedelta(hours=3), status="failed",
                            event_type="checkout.session.expired", error="then retried", duration_ms=5)
        conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed', error_message = NULL "
                             "WHERE stripe_event_id = :id"), {"id": retried})
    sql = load_package("jobs.alerting", "rules.sql")
    with db.connect() as conn:
        rows = sql.all(conn, "payment_event_failed", since=since)
    assert [row["event_type"] for row in rows] == ["checkout.session.async_payment_failed",
                                                   "checkout.session.completed"]
    by_type = {row["event_type"]: row for row in rows}
    done = by_type["checkout.session.completed"]
    assert (done["failed"], done["without_retry"]) == (7, 6)
    assert done["next_retry_at"] == NOW + timedelta(minutes=10)
    assert done["first_failed_at"] == since + timedelta(hours=1, milliseconds=250)
    assert done["last_failed_at"] == since + timedelta(hours=1, minutes=6, milliseconds=250)
    assert list(done["example_event_ids"]) == completed_ids[::-1][:5]
    assert done["last_error"] == "handler error 6"
    asynchronous = by_type["checkout.session.async_payment_failed"]
    assert (asynchronous["failed"], asynchronous["without_retry"], asynchronous["next_retry_at"]) == (2, 2, None)
    assert list(asynchronous["example_event_ids"]) == async_ids[::-1]
    assert asynchronous["last_error"] == "async error 1"
    with db.connect() as conn:   # a lookback with no failure in it: no row, not a row of zeros
        assert sql.all(conn, "payment_event_failed", since=since + timedelta(hours=31)) == []


def test_silence_baseline_equals_a_count_of_the_rows_on_hour_bounds_and_after_folding(db):
    """Random traffic over two days, events on whole hours and at one instant several times:
    for many `until`s and baseline lengths, before and after the rollups fold their pending
    changes, the baseline is the count over (last - hours, last] of the rows."""
    import random

    import sqlalchemy as sa

    from core.sql import load_package
    from tests.support.factories import add_event

    rng = random.Random(14)
    start = datetime(2026, 11, 28, 0, 0, tzinfo=timezone.utc)
    times = [start + timedelta(seconds=rng.randrange(0, 48 * 3600)) for _ in range(150)]
    times += [start + timedelta(hours=h) for h in (0, 5, 6, 24, 30, 47)]   # on whole hours
    times += [start + timedelta(hours=29, minutes=10)] * 3                 # several at one instant
    with db.begin() as conn:
        for at in times:
            add_event(conn, created_at=at)
    untils = [start + timedelta(hours=h) for h in (1, 6, 24, 30)]
    untils += [start + timedelta(hours=29, minutes=10, microseconds=1), start + timedelta(hours=48, minutes=1)]
    untils += [start + timedelta(seconds=rng.randrange(3600, 48 * 3600)) for _ in range(6)]
    sql = load_package("jobs.alerting", "rules.sql")
    for folded in (False, True):
        if folded:
            with db.begin() as conn:
                assert conn.execute(sa.text("SELECT webhook_rollup_fold()")).scalar() > 0
        with db.connect() as conn:
            for until in untils:
                for hours in (1, 5, 24):
                    row = sql.one(conn, "silence", until=until, baseline_hours=hours, weeks=4)
                    last = max(at for at in times if at < until)
                    expected = sum(1 for at in times if last - timedelta(hours=hours) < at <= last)
                    assert (row["last_event_at"], row["baseline_events"]) == (last, expected), (until, hours, folded)
