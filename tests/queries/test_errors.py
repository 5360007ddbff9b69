"""The errors page's queries on a hand-built dataset whose answers are written out here."""

from datetime import datetime, timedelta, timezone

import pytest

from queries import fetch_df
from tests.support.factories import add_event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
WINDOW = {"start": T0, "end": T0 + timedelta(hours=3)}
A, B, C = "checkout.session.completed", "checkout.session.expired", "payment_intent.payment_failed"


@pytest.fixture
def failures(db):
    rows = [
        # (minute, status, attempts, type, error)
        (10, "failed", 1, A, "timeout after 3012 ms for evt_1NxAbc123456"),
        (70, "completed", 2, A, "timeout after 95 ms for evt_1NyDef987654"),
        (20, "failed", 3, B, "registration 0b5a2c3e-1234-4abc-9def-0123456789ab not found for session cs_test_a1B2c3D4e5"),
        (130, "failed", 1, B, "registration 9F8E7D6C-1234-4ABC-9DEF-0123456789AB not found for session  cs_test_z9Y8x7W6v5"),
        (30, "failed", 1, A, "Card declined for someone@example.com"),
        (40, "failed", 1, C, "payment_intent_unexpected_state"),
        (50, "pending", 2, A, None),
        (60, "completed", 1, A, None),
    ]
    with db.begin() as conn:
        for minute, status, attempts, event_type, error in rows:
            add_event(conn, created_at=T0 + timedelta(minutes=minute), status=status, attempts=attempts,
                      event_type=event_type, error=error, duration_ms=10)
        add_event(conn, created_at=T0 - timedelta(minutes=5), status="failed", event_type=C,
                  error="timeout after 1 ms for evt_1Outside00")
    return db


def test_error_fingerprints_group_messages_that_differ_only_in_ids_and_numbers(failures):
    df = fetch_df(failures, "error_fingerprints", **WINDOW, limit=10)
    rows = [(r.fingerprint, r.events, r.still_failing, r.first_seen, r.last_seen, r.event_types)
            for r in df.itertuples()]
    minute = lambda m: T0 + timedelta(minutes=m)
    assert rows == [
        ("registration <uuid> not found for session <id>", 2, 2, minute(20), minute(130), B),
        ("timeout after <n> ms for <id>", 2, 1, minute(10), minute(70), A),
        ("payment_intent_unexpected_state", 1, 1, minute(40), minute(40), C),  # error codes stay
        ("Card declined for <email>", 1, 1, minute(30), minute(30), A),
    ]
    assert df.loc[1, "example"] == "timeout after 3012 ms for evt_1NxAbc123456"


def test_error_fingerprints_limit(failures):
    assert len(fetch_df(failures, "error_fingerprints", **WINDOW, limit=2)) == 2


def test_failure_outcomes_per_event_type(failures):
    df = fetch_df(failures, "failure_outcomes", **WINDOW)
    rows = [(r.event_type, r.still_failing, r.recovered, r.retrying) for r in df.itertuples()]
    assert rows == [(A, 2, 1, 1), (B, 2, 0, 0), (C, 1, 0, 0)]


def test_failures_by_bucket_and_type(failures):
    df = fetch_df(failures, "failures_by_bucket_and_type", **WINDOW, bucket="hour")
    rows = [(r.bucket.hour, r.event_type, r.failed) for r in df.itertuples()]
    assert rows == [(10, A, 2), (10, B, 1), (10, C, 1), (12, B, 1)]


def test_failure_plan_counts_every_failed_event_by_category_whatever_its_age(db):
    """Read from the rollups (how many failed) and the failed events' index (how many need a
    person, the next retry): the same answers as counting the rows, before and after the
    pending rollup changes are folded, and after events recover, change category or leave."""
    import sqlalchemy as sa

    now = datetime.now(timezone.utc).replace(microsecond=0)
    soon, later = now + timedelta(minutes=5), now + timedelta(hours=2)
    rows = [
        # (age, status, category, next retry)
        (timedelta(days=40), "failed", "network", later),
        (timedelta(days=3), "failed", "network", soon),
        (timedelta(minutes=1), "failed", "network", None),
        (timedelta(days=9), "failed", "validation", None),
        (timedelta(hours=2), "failed", None, None),        # no category: counted as unknown
        (timedelta(hours=1), "failed", "unknown", later),
        (timedelta(hours=1), "completed", "network", None),  # recovered: not counted
        (timedelta(hours=1), "pending", "stripe", later),
    ]
    ids = []
    with db.begin() as conn:
        for age, status, category, retry_at in rows:
            event_id = add_event(conn, created_at=now - age, status=status, error="boom", error_category=category,
                                 duration_ms=10)
            conn.execute(sa.text("UPDATE webhook_events SET next_retry_at = :at WHERE stripe_event_id = :id"),
                         {"at": retry_at, "id": event_id})
            ids.append(event_id)

    def plan():
        return [(r.category, r.retry_planned, r.needs_person, None if r.next_retry_at is None or
                 r.next_retry_at != r.next_retry_at else r.next_retry_at.to_pydatetime())
                for r in fetch_df(db, "failure_plan").itertuples()]

    expected = [("network", 2, 1, soon), ("unknown", 1, 1, later), ("validation", 0, 1, None)]
    assert plan() == expected
    with db.begin() as conn:
        conn.execute(sa.text("SELECT webhook_rollup_fold()"))
    assert plan() == expected
    with db.begin() as conn:
        # The next network retry completes; the validation failure is re-categorised; the
        # 40-day-old failure is deleted.
        conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed', next_retry_at = NULL "
                             "WHERE stripe_event_id = :id"), {"id": ids[1]})
        conn.execute(sa.text("UPDATE webhook_events SET error_category = 'stripe' WHERE stripe_event_id = :id"),
                     {"id": ids[3]})
        conn.execute(sa.text("DELETE FROM webhook_events WHERE stripe_event_id = :id"), {"id": ids[0]})
    assert plan() == [("network", 0, 1, None), ("stripe", 0, 1, None), ("unknown", 1, 1, later)]


@pytest.mark.parametrize("name, extra", [
    ("error_fingerprints", {"limit": 10}),
    ("failure_outcomes", {}),
    ("failures_by_bucket_and_type", {"bucket": "day"}),
])
def test_queries_run_on_an_empty_database(dashboard_engine, name, extra):
    assert fetch_df(dashboard_engine, name, **WINDOW, **extra).empty
