"""The error policy in the database: the policy table and CHECKs equal core.error_policy, and
the tracking functions keep one row per attempt and plan the next retry."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from core.error_policy import ALERT_LEVELS, ATTEMPT_OUTCOMES, ATTEMPT_SOURCES, CATEGORIES, POLICY, RECOVERY_ACTIONS
from local_stripe.objects import checkout_session_event
from tracking.tracker import EventTracker


def check_values(engine, constraint: str) -> set[str]:
    with engine.connect() as conn:
        definition = conn.execute(sa.text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :n"),
                                  {"n": constraint}).scalar_one()
    return set(re.findall(r"'([^']+)'::text", definition))


def test_the_database_declares_the_same_policy_as_the_code(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM error_retry_policy")).mappings().all()
    assert {row["category"]: (tuple(row["retry_delays_s"]), row["max_attempts"], row["recovery_action"],
                              row["alert_level"], row["recovery_action_exhausted"]) for row in rows} == {
        p.category: (p.retry_delays_s, p.max_attempts, p.recovery_action, p.alert_level,
                     p.recovery_action_exhausted) for p in POLICY.values()}
    assert check_values(engine, "webhook_events_error_category_check") == set(CATEGORIES)
    assert check_values(engine, "webhook_event_attempts_error_category_check") == set(CATEGORIES)
    assert check_values(engine, "webhook_events_alert_level_check") == set(ALERT_LEVELS)
    assert check_values(engine, "webhook_event_attempts_alert_level_check") == set(ALERT_LEVELS)
    assert check_values(engine, "webhook_events_recovery_action_check") == set(RECOVERY_ACTIONS)
    assert check_values(engine, "webhook_event_attempts_source_check") == set(ATTEMPT_SOURCES)
    assert check_values(engine, "webhook_event_attempts_outcome_check") == set(ATTEMPT_OUTCOMES)


def attempts(engine, event_id: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM webhook_event_attempts WHERE stripe_event_id = :id ORDER BY attempt"),
            {"id": event_id}).mappings()]


def event(engine, event_id: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM webhook_events WHERE stripe_event_id = :id"),
                                 {"id": event_id}).mappings().one())


def test_a_recovered_event_keeps_its_failures_in_the_attempts_table(db):
    tracker = EventTracker(db)
    sample = checkout_session_event("payment_intent.created")
    claim = tracker.begin(sample)
    assert tracker.fail(claim, ConnectionResetError("peer reset"))
    failed = event(db, sample["id"])
    assert (failed["error_category"], failed["recovery_action"], failed["alert_level"]) == (
        "network", "retry_with_backoff", "warning")
    wait = failed["next_retry_at"] - failed["processed_at"]
    assert abs(wait - timedelta(seconds=POLICY["network"].retry_delays_s[0])) < timedelta(seconds=1)

    claim = tracker.begin(sample, source="retry")
    assert event(db, sample["id"])["next_retry_at"] is None  # nothing planned while it runs
    with tracker.attempt(claim) as attempt:
        attempt.outcome = "ignored"
    done = event(db, sample["id"])
    assert (done["processing_status"], done["error_message"], done["next_retry_at"]) == ("completed", None, None)
    rows = attempts(db, sample["id"])
    assert [(r["attempt"], r["source"], r["outcome"]) for r in rows] == [(1, "delivery", "failed"),
                                                                         (2, "retry", "completed")]
    assert rows[0]["error_category"] == "network" and "peer reset" in rows[0]["error_message"]
    assert rows[0]["finished_at"] >= rows[0]["started_at"] and rows[1]["duration_ms"] >= 0


def test_a_permanent_failure_plans_no_retry_and_needs_a_person(db):
    tracker = EventTracker(db)
    sample = checkout_session_event("checkout.session.completed")
    claim = tracker.begin(sample)
    tracker.fail(claim, KeyError("payment_status"))
    row = event(db, sample["id"])
    assert (row["error_category"], row["next_retry_at"], row["recovery_action"], row["alert_level"]) == (
        "validation", None, "fix_and_retry", "critical")
    assert attempts(db, sample["id"])[0]["retryable"] is False


def test_retries_stop_at_the_category_limit(db):
    tracker = EventTracker(db)
    sample = checkout_session_event("payment_intent.created")
    limit = POLICY["unknown"].max_attempts
    for n in range(1, limit + 1):
        claim = tracker.begin(sample)
        assert claim.attempt == n
        tracker.fail(claim, RuntimeError("handler bug"))
        planned = event(db, sample["id"])["next_retry_at"]
        assert (planned is None) == (n == limit)
    assert event(db, sample["id"])["recovery_action"] == "investigate"
    assert [r["outcome"] for r in attempts(db, sample["id"])] == ["failed"] * limit


def test_a_handler_in_another_language_calls_the_old_signatures(db):
    """supabase.rpc and psql calls written for the first version keep working."""
    with db.begin() as conn:
        decision = conn.execute(sa.text(
            "SELECT decision FROM webhook_event_begin('evt_ts_1', 'charge.succeeded', CAST('{}' AS jsonb))")).scalar()
        assert decision == "process"
        assert conn.execute(sa.text(
            "SELECT webhook_event_fail('evt_ts_1', 'Stripe said 503', NULL, 'stripe', 1)")).scalar()
    row = event(db, "evt_ts_1")
    assert row["next_retry_at"] is not None and row["recovery_action"] == "retry_with_backoff"
    with db.begin() as conn:
        conn.execute(sa.text("SELECT * FROM webhook_event_begin(p_stripe_event_id => 'evt_ts_1', "
                             "p_event_type => 'charge.succeeded', p_payload => CAST('{}' AS jsonb))"))
        assert conn.execute(sa.text("SELECT webhook_event_complete('evt_ts_1')")).scalar()
    assert [r["outcome"] for r in attempts(db, "evt_ts_1")] == ["failed", "completed"]


def test_cleanup_takes_an_archived_events_attempts_with_it(db):
    from datetime import datetime, timezone

    from jobs.cleanup import command as cleanup

    tracker = EventTracker(db)
    old, recent = (checkout_session_event("payment_intent.created") for _ in range(2))
    for sample in (old, recent):
        claim = tracker.begin(sample)
        tracker.fail(claim, ConnectionResetError("reset"))
        with tracker.track(sample) as attempt:
            attempt.outcome = "ignored"
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_events SET created_at = now() - interval '200 days' "
                             "WHERE stripe_event_id = :id"), {"id": old["id"]})
    cleanup.run(db, now=datetime.now(timezone.utc), skip_registrations=True, trigger="cli")
    assert attempts(db, old["id"]) == []
    assert [r["outcome"] for r in attempts(db, recent["id"])] == ["failed", "completed"]
