"""The tracking SQL functions and the Python tracker, on a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import sqlalchemy as sa
import stripe

from local_stripe.objects import checkout_session_event
from tests.conftest import REPO
from tests.support.factories import add_registration
from tracking.registrations import EventValidationError, RegistrationNotFound, apply_event
from tracking.tracker import (
    AttemptSuperseded,
    DuplicateDelivery,
    EventInProgress,
    EventTracker,
    InvalidEvent,
    categorise,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def event_row(engine, event_id: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM webhook_events WHERE stripe_event_id = :id"),
                           {"id": event_id}).mappings().one()
    return dict(row)


def registration_status(engine, registration_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT processing_status FROM registrations WHERE id = :id"),
                            {"id": registration_id}).scalar_one()


def begin_sql(conn, event_id: str, stale_after: str = "5 minutes"):
    """Call the function the way any client would: plain SQL with named arguments."""
    return conn.execute(sa.text("""
        SELECT * FROM webhook_event_begin(p_stripe_event_id => :id, p_event_type => 'invoice.paid',
                                          p_payload => CAST(:payload AS jsonb),
                                          p_stale_after => CAST(:stale AS interval))"""),
        {"id": event_id, "payload": json.dumps({"id": event_id}), "stale": stale_after}).one()


# --- the SQL functions ------------------------------------------------------------------

def test_begin_records_a_new_event_as_processing(db):
    event = checkout_session_event("checkout.session.completed", created=int(NOW.timestamp()), livemode=True)
    claim = EventTracker(db).begin(event)
    assert (claim.decision, claim.attempt, claim.previous_status) == ("process", 1, None)
    row = event_row(db, event["id"])
    assert row["processing_status"] == "processing"
    assert row["attempts"] == 1
    assert row["event_type"] == "checkout.session.completed"
    assert row["payload"] == event
    assert row["stripe_created_at"] == NOW
    assert row["livemode"] is True
    assert row["processing_started_at"] is not None


def test_decisions_for_each_state_of_an_existing_event(db):
    with db.begin() as conn:
        assert begin_sql(conn, "evt_a").decision == "process"
    with db.begin() as conn:
        # Still processing and fresh: another worker has it.
        assert tuple(begin_sql(conn, "evt_a")) == ("retry_later", 1, "processing")
    with db.begin() as conn:
        assert conn.execute(sa.text("SELECT webhook_event_complete('evt_a', 'done')")).scalar() is True
    with db.begin() as conn:
        assert tuple(begin_sql(conn, "evt_a")) == ("skip_duplicate", 1, "completed")
    assert event_row(db, "evt_a")["attempts"] == 1


def test_a_failed_event_is_reclaimed_and_completing_clears_the_error(db):
    with db.begin() as conn:
        begin_sql(conn, "evt_f")
        assert conn.execute(sa.text("""SELECT webhook_event_fail('evt_f', 'boom',
                                         '{"exception_type": "x.Boom"}', 'network')""")).scalar()
    failed = event_row(db, "evt_f")
    assert (failed["processing_status"], failed["error_message"], failed["error_category"]) == ("failed", "boom", "network")
    assert failed["error_details"] == {"exception_type": "x.Boom"}
    assert failed["processed_at"] is not None and failed["processing_duration_ms"] >= 0

    with db.begin() as conn:
        assert tuple(begin_sql(conn, "evt_f")) == ("process", 2, "failed")
    assert event_row(db, "evt_f")["error_message"] == "boom"  # kept visible while retrying
    with db.begin() as conn:
        conn.execute(sa.text("SELECT webhook_event_complete('evt_f', 'ok', NULL, 2)"))
    done = event_row(db, "evt_f")
    assert (done["processing_status"], done["attempts"], done["outcome"]) == ("completed", 2, "ok")
    assert done["error_message"] is None and done["error_category"] is None and done["error_details"] is None


def test_stale_processing_is_reclaimed_and_the_old_attempt_can_no_longer_finish(db):
    with db.begin() as conn:
        begin_sql(conn, "evt_s")
    with db.begin() as conn:
        assert tuple(begin_sql(conn, "evt_s", stale_after="0 seconds")) == ("process", 2, "processing")
    with db.begin() as conn:
        # The first worker wakes up: both its complete and its fail are refused.
        assert conn.execute(sa.text("SELECT webhook_event_complete('evt_s', 'late', NULL, 1)")).scalar() is False
        assert conn.execute(sa.text("SELECT webhook_event_fail('evt_s', 'late', NULL, NULL, 1)")).scalar() is False
        assert conn.execute(sa.text("SELECT webhook_event_complete('evt_s', 'mine', NULL, 2)")).scalar() is True
    row = event_row(db, "evt_s")
    assert (row["processing_status"], row["attempts"], row["outcome"]) == ("completed", 2, "mine")


def test_fail_keeps_an_unknown_category_as_unknown_instead_of_losing_the_failure(db):
    with db.begin() as conn:
        begin_sql(conn, "evt_c")
        assert conn.execute(sa.text("SELECT webhook_event_fail('evt_c', 'x', NULL, 'cosmic_rays')")).scalar()
    row = event_row(db, "evt_c")
    assert row["error_category"] == "unknown"
    assert row["error_details"] == {"requested_category": "cosmic_rays"}


def test_complete_or_fail_of_an_event_never_begun_changes_nothing(db):
    with db.begin() as conn:
        assert conn.execute(sa.text("SELECT webhook_event_complete('evt_nobody')")).scalar() is False
        assert conn.execute(sa.text("SELECT webhook_event_fail('evt_nobody', 'x')")).scalar() is False
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 0


def test_functions_run_as_the_caller_with_a_pinned_search_path(engine):
    # SECURITY INVOKER keeps row-level security in force on Supabase; a pinned search_path
    # keeps objects on the caller's path from standing in for the tables.
    with engine.connect() as conn:
        rows = conn.execute(sa.text("""
            SELECT proname, prosecdef, proconfig FROM pg_proc
            WHERE proname LIKE 'webhook\\_event\\_%' AND pronamespace = 'public'::regnamespace
            ORDER BY proname""")).all()
    assert [r.proname for r in rows] == ["webhook_event_begin", "webhook_event_complete", "webhook_event_fail",
                                         "webhook_event_hold", "webhook_event_lock", "webhook_event_lock_held",
                                         "webhook_event_release"]
    for row in rows:
        assert row.prosecdef is False
        assert row.proconfig == ['search_path=""']


# --- the Python tracker -----------------------------------------------------------------

def test_the_same_event_twice_in_sequence_is_processed_once(db):
    tracker = EventTracker(db)
    registration = add_registration_now(db)
    event = checkout_session_event("checkout.session.completed", registration_id=registration)
    runs = []
    with tracker.track(event) as attempt:
        runs.append(attempt.claim.attempt)
        attempt.outcome = "worked"
    with pytest.raises(DuplicateDelivery):
        with tracker.track(event):
            runs.append("again")
    assert runs == [1]
    row = event_row(db, event["id"])
    assert (row["processing_status"], row["attempts"], row["outcome"]) == ("completed", 1, "worked")
    assert row["processed_at"] >= row["processing_started_at"]
    assert row["processing_duration_ms"] >= 0


def test_a_failure_rolls_back_the_work_records_the_error_and_propagates(db):
    tracker = EventTracker(db)
    registration = add_registration_now(db)
    event = checkout_session_event("checkout.session.completed", registration_id=registration)

    def handle(conn):
        conn.execute(sa.text("UPDATE registrations SET processing_status = 'completed' WHERE id = :id"),
                     {"id": registration})
        raise EventValidationError("data.object.payment_status is missing")

    with pytest.raises(EventValidationError):
        with tracker.track(event, context={"handler": "tests"}) as attempt:
            attempt.context["step"] = "update registration"
            handle(attempt.conn)
    assert registration_status(db, registration) == "pending"
    row = event_row(db, event["id"])
    assert row["processing_status"] == "failed"
    assert row["error_message"] == "EventValidationError: data.object.payment_status is missing"
    assert row["error_category"] == "validation"
    details = row["error_details"]
    assert details["exception_type"] == "tracking.registrations.EventValidationError"
    assert "in handle" in details["traceback"] and details["traceback"].rstrip().endswith("is missing")
    assert details["context"] == {"handler": "tests", "step": "update registration"}
    assert details["attempt"] == 1


def test_twenty_concurrent_deliveries_of_one_event_process_it_exactly_once(db):
    # Each thread gets its own connection (pool larger than the crowd).
    engine = sa.create_engine(db.url, pool_size=25, max_overflow=0)
    tracker = EventTracker(engine)
    event = checkout_session_event("checkout.session.completed")
    start = threading.Barrier(20)
    processed, answers, lock = [], [], threading.Lock()

    def deliver():
        start.wait()
        try:
            with tracker.track(event) as attempt:
                with lock:
                    processed.append(attempt.claim.attempt)
                # Hold the claim a moment so the others find it in progress.
                attempt.conn.execute(sa.text("SELECT pg_sleep(0.2)"))
            answer = "processed"
        except DuplicateDelivery:
            answer = "duplicate"
        except EventInProgress:
            answer = "in_progress"
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        engine.dispose()
    assert processed == [1]
    assert answers.count("processed") == 1
    assert set(answers) <= {"processed", "duplicate", "in_progress"} and len(answers) == 20
    row = event_row(db, event["id"])
    assert (row["processing_status"], row["attempts"]) == ("completed", 1)


def test_a_worker_that_dies_mid_processing_is_taken_over_by_the_next_delivery(db, database_url):
    registration = add_registration_now(db)
    event = checkout_session_event("checkout.session.completed", registration_id=registration)
    worker = textwrap.dedent("""
        import json, os, sys
        import sqlalchemy as sa
        from core.db import create_jobs_engine
        from tracking.tracker import EventTracker
        event = json.loads(sys.argv[1])
        with EventTracker(create_jobs_engine()).track(event) as attempt:
            attempt.conn.execute(sa.text("UPDATE registrations SET processing_status = 'completed' WHERE id = :id"),
                                 {"id": event["data"]["object"]["client_reference_id"]})
            os._exit(9)  # killed mid-way: no complete, no fail, no commit
    """)
    died = subprocess.run([sys.executable, "-c", worker, json.dumps(event)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert died.returncode == 9, died.stderr
    assert event_row(db, event["id"])["processing_status"] == "processing"
    assert registration_status(db, registration) == "pending"  # its work never committed

    # Its lock died with its connection: the very next delivery takes over, no waiting for
    # the (default, five-minute) time limit.
    with EventTracker(db).track(event) as attempt:
        assert (attempt.claim.decision, attempt.claim.attempt, attempt.claim.previous_status) == ("process", 2, "processing")
        attempt.outcome = apply_event(attempt.conn, event).label
    assert event_row(db, event["id"])["processing_status"] == "completed"
    assert registration_status(db, registration) == "completed"
    with db.connect() as conn:
        outcomes = conn.execute(sa.text("SELECT attempt, outcome, holds_lock FROM webhook_event_attempts "
                                        "WHERE stripe_event_id = :id ORDER BY attempt"), {"id": event["id"]}).all()
    assert [tuple(row) for row in outcomes] == [(1, "superseded", True), (2, "completed", True)]


def test_a_live_worker_keeps_its_event_until_it_finishes(db):
    event = checkout_session_event("checkout.session.expired", registration_id=add_registration_now(db))
    tracker = EventTracker(db)
    running = tracker.attempt(tracker.begin(event))
    attempt = running.__enter__()  # mid-attempt: its connection holds the event's lock
    try:
        with pytest.raises(EventInProgress):
            with EventTracker(db).track(event):
                pass
        attempt.outcome = "first"
    finally:
        running.__exit__(None, None, None)
    row = event_row(db, event["id"])
    assert (row["processing_status"], row["attempts"], row["outcome"]) == ("completed", 1, "first")
    with db.connect() as conn:  # released: a pooled connection keeps no lock behind
        assert conn.execute(sa.text("SELECT webhook_event_lock_held(:id)"), {"id": event["id"]}).scalar() is False


def test_a_tracked_delivery_costs_two_statements_and_leaves_no_lock(db):
    """Every statement is a round trip a webhook handler waits for: claiming takes the lock
    and records the delivery in one statement, completing gives the lock back in the one that
    marks the event completed; a duplicate is answered by the claim alone."""
    event = checkout_session_event("checkout.session.expired", registration_id=add_registration_now(db))
    sent: list[str] = []

    def count(conn, cursor, statement, *args):
        sent.append(statement)

    sa.event.listen(db, "before_cursor_execute", count)
    try:
        with EventTracker(db).track(event) as attempt:
            attempt.outcome = "done"
        first, sent[:] = list(sent), []
        with pytest.raises(DuplicateDelivery):
            with EventTracker(db).track(event):
                pass
        duplicate = list(sent)
    finally:
        sa.event.remove(db, "before_cursor_execute", count)
    assert len(first) == 2, first
    assert len(duplicate) == 1, duplicate
    with db.connect() as conn:  # no session, pooled or not, holds the lock any more
        assert conn.execute(sa.text("SELECT webhook_event_lock_held(:id)"), {"id": event["id"]}).scalar() is False
        outcomes = conn.execute(sa.text("SELECT attempt, outcome, holds_lock FROM webhook_event_attempts "
                                        "WHERE stripe_event_id = :id"), {"id": event["id"]}).all()
    assert [tuple(row) for row in outcomes] == [(1, "completed", True)]
    assert event_row(db, event["id"])["outcome"] == "done"


def test_a_hung_worker_is_taken_over_once_the_time_limit_passes(db):
    event = checkout_session_event("checkout.session.expired", registration_id=add_registration_now(db))
    hung = EventTracker(db)
    running = hung.attempt(hung.begin(event))
    running.__enter__()  # alive (lock held) but never finishing
    with pytest.raises(EventInProgress):
        with EventTracker(db, stale_after=timedelta(minutes=5)).track(event):
            pass
    with EventTracker(db, stale_after=timedelta(0)).track(event) as attempt:
        assert attempt.claim.attempt == 2
        attempt.outcome = "taken over"
    with pytest.raises(AttemptSuperseded):  # the hung one wakes up: its work is rolled back
        running.__exit__(None, None, None)
    assert event_row(db, event["id"])["outcome"] == "taken over"


def test_a_caller_that_never_takes_the_lock_keeps_the_time_rule(db):
    # psql, another language, an older tracker: begin only. Its worker cannot prove it is
    # alive, so it is not presumed dead before the time limit either.
    with db.begin() as conn:
        assert tuple(begin_sql(conn, "evt_nolock"))[0] == "process"
    with db.begin() as conn:
        assert tuple(begin_sql(conn, "evt_nolock")) == ("retry_later", 1, "processing")
        assert tuple(begin_sql(conn, "evt_nolock", stale_after="0 seconds")) == ("process", 2, "processing")


def test_a_superseded_attempt_rolls_back_its_work(db):
    registration = add_registration_now(db)
    event = checkout_session_event("checkout.session.expired", registration_id=registration)
    slow = EventTracker(db)
    slow_claim = slow.begin(event)
    with EventTracker(db, stale_after=timedelta(0)).track(event) as attempt:
        attempt.outcome = "reclaimer"
    with pytest.raises(AttemptSuperseded):
        with slow.attempt(slow_claim) as late:
            late.conn.execute(sa.text("UPDATE registrations SET processing_status = 'expired' WHERE id = :id"),
                              {"id": registration})
    assert registration_status(db, registration) == "pending"
    row = event_row(db, event["id"])
    assert (row["processing_status"], row["attempts"], row["outcome"]) == ("completed", 2, "reclaimer")


def test_an_object_that_is_not_an_event_is_refused_before_anything_is_written(db):
    tracker = EventTracker(db)
    for not_an_event in ({"type": "x"}, {"id": "evt_1"}, {"id": "", "type": "x"}, ["evt_1"]):
        with pytest.raises(InvalidEvent):
            tracker.begin(not_an_event)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 0


@pytest.mark.parametrize("exc, category", [
    (stripe.APIConnectionError("connection reset"), "stripe"),  # the error policy: the handler's Stripe call
    (stripe.RateLimitError("slow down"), "stripe"),
    (stripe.InvalidRequestError("no such session", param="id"), "stripe"),
    (sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")), "database"),
    (psycopg.errors.SerializationFailure("could not serialize"), "database"),
    (ConnectionRefusedError("refused"), "network"),
    (TimeoutError("timed out"), "network"),
    (KeyError("payment_status"), "validation"),
    (EventValidationError("bad amount"), "validation"),
    (RegistrationNotFound("no registration"), "validation"),
    (json.JSONDecodeError("Expecting value", "", 0), "validation"),
    (RuntimeError("bug"), "unknown"),
])
def test_errors_are_categorised_by_exception_type(exc, category):
    assert categorise(exc) == category


def add_registration_now(engine, **kwargs) -> str:
    with engine.begin() as conn:
        return add_registration(conn, created_at=datetime.now(timezone.utc), **kwargs)
