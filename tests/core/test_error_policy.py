"""The classifier on real exceptions raised by real libraries against real servers: the
embedded PostgreSQL, local_stripe through the stripe library, refused sockets."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
import stripe

from core.error_policy import ALERT_LEVELS, CATEGORIES, POLICY, RECOVERY_ACTIONS, PayloadError, classify, plan
from local_stripe.objects import checkout_session_event
from tests.support.stripe_server import API_KEY
from tracking.registrations import EventValidationError, RegistrationNotFound, apply_event

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # the point is to catch it
        return exc
    raise AssertionError("expected an exception")


# --- PostgreSQL ----------------------------------------------------------------------------

@pytest.fixture
def lock_table(db):
    with db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS classify_probe (id int PRIMARY KEY, v int NOT NULL)"))
        conn.execute(sa.text("TRUNCATE classify_probe"))
        conn.execute(sa.text("INSERT INTO classify_probe VALUES (1, 0), (2, 0)"))
    yield db
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE classify_probe"))


def test_a_real_deadlock_is_a_transient_database_error(lock_table):
    errors: list[BaseException] = []
    both_locked = threading.Barrier(2)

    def worker(first: int, second: int) -> None:
        try:
            with lock_table.begin() as conn:
                conn.execute(sa.text("SET LOCAL deadlock_timeout = '100ms'"))
                conn.execute(sa.text("UPDATE classify_probe SET v = v + 1 WHERE id = :id"), {"id": first})
                both_locked.wait(10)
                conn.execute(sa.text("UPDATE classify_probe SET v = v + 1 WHERE id = :id"), {"id": second})
        except sa.exc.DBAPIError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1, "PostgreSQL aborts exactly one side of a deadlock"
    result = classify(errors[0])
    assert (result.category, result.retryable, result.transient) == ("database", True, True)
    assert "40P01" in result.reason
    assert result.recovery_action == "retry_soon"


def test_a_terminated_backend_is_a_transient_database_error(db):
    with db.connect() as victim, db.connect() as killer:
        pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        assert killer.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        exc = raised(lambda: victim.execute(sa.text("SELECT 1")))
        victim.invalidate()
    result = classify(exc)
    assert (result.category, result.retryable) == ("database", True)


def test_a_statement_timeout_is_transient_and_bad_data_is_validation(db):
    with db.connect() as conn:
        conn.execute(sa.text("SET statement_timeout = '50ms'"))
        timeout = raised(lambda: conn.execute(sa.text("SELECT pg_sleep(2)")))
        conn.rollback()
        nul = raised(lambda: conn.execute(sa.text("SELECT CAST(:j AS jsonb)"), {"j": '{"a": "\\u0000"}'}))
    assert "57014" in classify(timeout).reason and classify(timeout).transient
    result = classify(nul)
    assert (result.category, result.retryable, result.alert_level) == ("validation", False, "critical")
    assert "22P05" in result.reason


def test_integrity_errors_by_meaning(db):
    insert = sa.text("INSERT INTO webhook_events (stripe_event_id, event_type, payload) "
                     "VALUES (:id, :type, CAST('{}' AS jsonb))")
    with db.begin() as conn:
        conn.execute(insert, {"id": "evt_dup", "type": "x"})
    with db.connect() as conn:
        duplicate = raised(lambda: conn.execute(insert, {"id": "evt_dup", "type": "x"}))
        conn.rollback()
        missing = raised(lambda: conn.execute(insert, {"id": "evt_null_type", "type": None}))
    # a concurrent writer got there first: a retry sees its row
    assert (classify(duplicate).category, classify(duplicate).retryable) == ("database", True)
    assert (classify(missing).category, classify(missing).retryable) == ("validation", False)


def test_an_unreachable_database_is_a_transient_database_error(down_port):
    engine = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{down_port}/none")
    exc = raised(lambda: engine.connect())
    engine.dispose()
    assert (classify(exc).category, classify(exc).retryable) == ("database", True)


def test_the_cause_decides_when_the_outer_error_is_generic(db):
    def wrapped():
        try:
            with db.connect() as conn:
                conn.execute(sa.text("SELECT 1/0"))
        except sa.exc.DBAPIError as exc:
            raise RuntimeError("the handler gave up") from exc

    result = classify(raised(wrapped))
    assert result.category == "validation" and "22012" in result.reason  # division_by_zero
    assert classify(RuntimeError("no cause")).category == "unknown"
    assert classify(RuntimeError("no cause")).retryable


# --- Stripe (the handler's own calls), through the real library ---------------------------

@pytest.mark.parametrize("status, error_type, retryable", [
    (429, stripe.RateLimitError, True),
    (500, stripe.APIError, True),
    (401, stripe.AuthenticationError, False),
    (403, stripe.PermissionError, False),
    (400, stripe.InvalidRequestError, False),
])
def test_stripe_errors_from_the_local_server(stripe_server, status, error_type, retryable):
    client = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_server.url}, max_network_retries=0)
    stripe_server.fail_next(1, status=status)
    exc = raised(lambda: client.v1.checkout.sessions.list())
    assert isinstance(exc, error_type)
    result = classify(exc)
    assert (result.category, result.retryable) == ("stripe", retryable)
    assert result.recovery_action == ("retry_with_backoff" if retryable else "check_stripe_access")


def test_a_stripe_server_that_is_down_is_a_transient_stripe_error(down_port):
    client = stripe.StripeClient(API_KEY, base_addresses={"api": f"http://127.0.0.1:{down_port}"},
                                 max_network_retries=0)
    exc = raised(lambda: client.v1.checkout.sessions.list())
    assert isinstance(exc, stripe.APIConnectionError)
    assert (classify(exc).category, classify(exc).retryable) == ("stripe", True)


# --- sockets and HTTP ------------------------------------------------------------------------

def test_a_refused_socket_and_http_errors_are_network_errors(down_port):
    refused = raised(lambda: socket.create_connection(("127.0.0.1", down_port), timeout=5))
    assert isinstance(refused, ConnectionRefusedError)
    assert (classify(refused).category, classify(refused).retryable) == ("network", True)
    via_httpx = raised(lambda: httpx.get(f"http://127.0.0.1:{down_port}/", timeout=5))
    assert (classify(via_httpx).category, classify(via_httpx).transient) == ("network", True)
    dns = raised(lambda: socket.getaddrinfo("name.invalid", 80))
    assert classify(dns).category == "network"


# --- the handler's own payload errors --------------------------------------------------------

def test_payload_errors_are_validation_and_need_a_person(db):
    event = checkout_session_event("checkout.session.completed")
    del event["data"]["object"]["id"]
    with db.begin() as conn:
        missing_field = raised(lambda: apply_event(conn, event))
    assert isinstance(missing_field, EventValidationError)
    with db.begin() as conn:
        unknown_registration = raised(lambda: apply_event(conn, checkout_session_event("checkout.session.completed")))
    assert isinstance(unknown_registration, RegistrationNotFound)
    for exc in (missing_field, unknown_registration, PayloadError("unsupported API version 2010-01-01")):
        result = classify(exc)
        assert (result.category, result.retryable, result.transient) == ("validation", False, False)
        assert result.recovery_action == "fix_and_retry" and result.alert_level == "critical"


# --- the policy itself -----------------------------------------------------------------------

def test_the_policy_covers_every_category_with_known_actions_and_levels():
    assert set(POLICY) == set(CATEGORIES)
    for policy in POLICY.values():
        assert policy.recovery_action in RECOVERY_ACTIONS and policy.recovery_action_exhausted in RECOVERY_ACTIONS
        assert policy.alert_level in ALERT_LEVELS


def test_plan_backs_off_then_stops_at_the_attempt_limit():
    network = POLICY["network"]
    planned = [plan("network", retryable=True, attempt=n, failed_at=NOW).next_retry_at for n in range(1, 10)]
    waits = [p - NOW for p in planned if p is not None]
    assert waits == sorted(waits) and waits[0] == timedelta(seconds=network.retry_delays_s[0])
    assert len(waits) == network.max_attempts - 1 and planned[-1] is None
    last = plan("network", retryable=True, attempt=network.max_attempts, failed_at=NOW)
    assert (last.alert_level, last.recovery_action) == ("critical", "investigate")
    assert plan("validation", retryable=True, attempt=1, failed_at=NOW).next_retry_at is None
    assert plan("stripe", retryable=False, attempt=1, failed_at=NOW).recovery_action == "check_stripe_access"
