"""The reference receiver under a real uvicorn, fed signed deliveries over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from devharness import AsgiServerThread, ManagedProcess, ProcessFailed, http_ready, listening_socket, socket_url
from local_stripe.objects import checkout_session_event
from tests.conftest import REPO
from tests.support.factories import add_registration
from tracking.receiver import MAX_BODY_BYTES, Receiver

SECRET = "whsec_test_receiver_secret"


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme, computed here independently of the stripe library that verifies it."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={signed_at},v1={digest}"


class ServerThread(AsgiServerThread):
    """A real uvicorn serving ``app`` on a loopback socket bound beforehand, in a thread."""

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def deliver(self, event_or_body, *, signature: str | None = None, secret: str = SECRET,
                timestamp: int | None = None):
        body = event_or_body if isinstance(event_or_body, bytes) else json.dumps(event_or_body).encode()
        headers = {"Content-Type": "application/json"}
        headers["Stripe-Signature"] = signature if signature is not None else sign(body, secret, timestamp)
        return self.request("POST", "/stripe/webhook", body, headers)


@pytest.fixture(scope="module")
def server(engine):
    with ServerThread(Receiver(engine=engine, webhook_secret=SECRET)) as running:
        yield running


@pytest.fixture
def receiver(server, db):
    return server


def registration(engine, **kwargs) -> str:
    with engine.begin() as conn:
        return add_registration(conn, created_at=datetime.now(timezone.utc), **kwargs)


def registration_row(engine, registration_id: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM registrations WHERE id = :id"),
                                 {"id": registration_id}).mappings().one())


def event_row(engine, event_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM webhook_events WHERE stripe_event_id = :id"),
                           {"id": event_id}).mappings().first()
    return dict(row) if row else None


def event_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar()


# --- the registration flow --------------------------------------------------------------

def test_a_paid_checkout_completes_the_registration_and_records_amount_and_session(receiver, db):
    reg = registration(db, amount_total=None, currency=None)
    event = checkout_session_event("checkout.session.completed", registration_id=reg,
                                   amount_total=4200, currency="EUR")
    status, answer = receiver.deliver(event)
    assert (status, answer["status"], answer["outcome"]) == (200, "processed", "registration_completed")
    row = registration_row(db, reg)
    assert row["processing_status"] == "completed" and row["completed_at"] is not None
    assert (row["amount_total"], row["currency"]) == (4200, "eur")
    assert row["stripe_checkout_session_id"] == event["data"]["object"]["id"]
    tracked = event_row(db, event["id"])
    assert (tracked["processing_status"], tracked["attempts"], tracked["outcome"]) == ("completed", 1, "registration_completed")
    assert str(tracked["registration_id"]) == reg
    assert tracked["processing_duration_ms"] is not None


def test_the_same_event_delivered_twice_is_processed_once(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    assert receiver.deliver(event)[1]["status"] == "processed"
    completed_at = registration_row(db, reg)["completed_at"]
    status, answer = receiver.deliver(event)
    assert (status, answer["status"]) == (200, "duplicate")
    assert registration_row(db, reg)["completed_at"] == completed_at
    assert event_row(db, event["id"])["attempts"] == 1


def test_a_session_is_matched_by_its_id_before_the_client_reference(receiver, db):
    by_session = registration(db, session_id="cs_test_known")
    other = registration(db)
    event = checkout_session_event("checkout.session.completed", session_id="cs_test_known", registration_id=other)
    assert receiver.deliver(event)[0] == 200
    assert registration_row(db, by_session)["processing_status"] == "completed"
    assert registration_row(db, other)["processing_status"] == "pending"


def test_the_amount_the_app_expected_is_kept_so_reconciliation_can_see_a_difference(receiver, db):
    reg = registration(db, amount_total=2500, currency="eur")
    event = checkout_session_event("checkout.session.completed", registration_id=reg, amount_total=900, currency="usd")
    assert receiver.deliver(event)[0] == 200
    row = registration_row(db, reg)
    assert (row["processing_status"], row["amount_total"], row["currency"]) == ("completed", 2500, "eur")


def test_delayed_payment_stays_pending_until_it_succeeds(receiver, db):
    reg = registration(db, amount_total=None, currency=None)
    session = f"cs_test_{uuid.uuid4().hex}"
    unpaid = checkout_session_event("checkout.session.completed", session_id=session, registration_id=reg,
                                    payment_status="unpaid", amount_total=1500)
    assert receiver.deliver(unpaid)[1]["outcome"] == "awaiting_payment"
    row = registration_row(db, reg)
    assert (row["processing_status"], row["stripe_checkout_session_id"], row["amount_total"]) == ("pending", session, 1500)
    succeeded = checkout_session_event("checkout.session.async_payment_succeeded", session_id=session,
                                       registration_id=reg, amount_total=1500)
    assert receiver.deliver(succeeded)[1]["outcome"] == "registration_completed"
    assert registration_row(db, reg)["processing_status"] == "completed"


def test_a_failed_delayed_payment_fails_the_registration(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.async_payment_failed", registration_id=reg,
                                   payment_status="unpaid")
    assert receiver.deliver(event)[1]["outcome"] == "registration_failed"
    assert registration_row(db, reg)["processing_status"] == "failed"


def test_an_expired_session_expires_the_pending_registration(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.expired", registration_id=reg, payment_status="unpaid")
    assert receiver.deliver(event)[1]["outcome"] == "registration_expired"
    assert registration_row(db, reg)["processing_status"] == "expired"


def test_expired_arriving_after_completed_never_downgrades(receiver, db):
    reg = registration(db)
    session = f"cs_test_{uuid.uuid4().hex}"
    receiver.deliver(checkout_session_event("checkout.session.completed", session_id=session, registration_id=reg))
    completed = registration_row(db, reg)
    late = checkout_session_event("checkout.session.expired", session_id=session, registration_id=reg,
                                  payment_status="unpaid")
    status, answer = receiver.deliver(late)
    assert (status, answer["outcome"]) == (200, "registration_already_completed")
    after = registration_row(db, reg)
    assert (after["processing_status"], after["completed_at"]) == ("completed", completed["completed_at"])


def test_an_abandoned_earlier_session_expiring_leaves_the_current_one_alone(receiver, db):
    reg = registration(db, session_id="cs_test_current")
    old = checkout_session_event("checkout.session.expired", session_id="cs_test_abandoned",
                                 registration_id=reg, payment_status="unpaid")
    assert receiver.deliver(old)[1]["outcome"] == "other_session_ignored"
    assert registration_row(db, reg)["processing_status"] == "pending"


def test_a_paid_session_without_registration_fails_and_succeeds_once_the_row_exists(receiver, db):
    reg_id = str(uuid.uuid4())
    event = checkout_session_event("checkout.session.completed", registration_id=reg_id)
    status, answer = receiver.deliver(event)
    # The error policy: an unknown registration is a validation failure, answered 2xx so
    # Stripe stops, recorded failed and left for a person (no automatic retry).
    assert (status, answer["status"], answer["error_category"], answer["retry"]) == (200, "failed", "validation", False)
    failed = event_row(db, event["id"])
    assert failed["processing_status"] == "failed" and failed["next_retry_at"] is None
    assert "matches no registration" in failed["error_message"]
    assert failed["error_details"]["exception_type"] == "tracking.registrations.RegistrationNotFound"
    # The app's row lands; a re-delivery (retry from the monitor, or Stripe's resend) completes it.
    registration(db, registration_id=reg_id)
    status, answer = receiver.deliver(event)
    assert (status, answer["status"], answer["attempt"]) == (200, "processed", 2)
    assert registration_row(db, reg_id)["processing_status"] == "completed"


# --- duplicates, concurrency, crashes ---------------------------------------------------

def test_twenty_concurrent_deliveries_process_the_event_exactly_once(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    body = json.dumps(event).encode()
    start = threading.Barrier(20)
    answers, lock = [], threading.Lock()

    def deliver():
        start.wait()
        result = receiver.deliver(body)
        with lock:
            answers.append(result)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 20
    assert all((s, a["status"]) in {(200, "processed"), (200, "duplicate"), (409, "in_progress")} for s, a in answers)
    # Stripe redelivers what was not acknowledged.
    for status, _ in answers:
        if status == 409:
            assert receiver.deliver(body)[1]["status"] == "duplicate"
    assert sum(a["status"] == "processed" for _, a in answers) == 1
    tracked = event_row(db, event["id"])
    assert (tracked["processing_status"], tracked["attempts"]) == ("completed", 1)
    assert registration_row(db, reg)["processing_status"] == "completed"


def test_an_event_left_processing_by_a_dead_worker_is_reclaimed_after_the_stale_threshold(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    body = json.dumps(event).encode()
    with db.begin() as conn:  # what a worker killed after begin leaves behind
        conn.execute(sa.text("SELECT webhook_event_begin(:id, :type, CAST(:payload AS jsonb))"),
                     {"id": event["id"], "type": event["type"], "payload": body.decode()})
    status, answer = receiver.deliver(body)
    assert (status, answer["status"]) == (409, "in_progress")
    assert registration_row(db, reg)["processing_status"] == "pending"

    with db.begin() as conn:  # the receiver's threshold (5 minutes) has passed
        conn.execute(sa.text("""UPDATE webhook_events SET processing_started_at = now() - interval '6 minutes'
                                WHERE stripe_event_id = :id"""), {"id": event["id"]})
    status, answer = receiver.deliver(body)
    assert (status, answer["status"], answer["attempt"]) == (200, "processed", 2)
    assert event_row(db, event["id"])["processing_status"] == "completed"
    assert registration_row(db, reg)["processing_status"] == "completed"


# --- bad input --------------------------------------------------------------------------

def test_a_bad_signature_is_refused_and_writes_nothing(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    for kwargs in ({"secret": "whsec_someone_else"}, {"signature": ""}, {"signature": "t=abc,v1=00"}):
        status, answer = receiver.deliver(event, **kwargs)
        assert (status, answer["reason"]) == (400, "bad_signature"), kwargs
    # A body changed after signing.
    body = json.dumps(event).encode()
    signature = sign(body)
    status, _ = receiver.deliver(body.replace(b'"paid"', b'"unpaid"'), signature=signature)
    assert status == 400
    assert event_count(db) == 0
    assert registration_row(db, reg)["processing_status"] == "pending"


def test_a_signature_older_than_the_tolerance_is_refused(receiver, db):
    event = checkout_session_event("checkout.session.completed")
    status, answer = receiver.deliver(event, timestamp=int(time.time()) - 301)
    assert (status, answer["reason"]) == (400, "bad_signature")
    assert "tolerance" in answer["detail"]
    assert event_count(db) == 0
    # Within the tolerance it is accepted, recorded and processed.
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    status, answer = receiver.deliver(event, timestamp=int(time.time()) - 240)
    assert (status, answer["status"]) == (200, "processed")
    assert event_count(db) == 1
    assert registration_row(db, reg)["processing_status"] == "completed"


@pytest.mark.parametrize("body", [
    b'{"id": "evt_1", "type": ',              # not JSON
    b"\xff\xfe not utf-8",                     # not text
    b'["evt_1", "checkout.session.completed"]',  # JSON, not an object
    b'{"type": "checkout.session.completed", "data": {"object": {}}}',  # no id
    b'{"id": "evt_no_type", "data": {"object": {}}}',                   # no type
])
def test_a_signed_but_malformed_body_is_kept_and_recorded_failed(receiver, db, body):
    status, answer = receiver.deliver(body)
    assert (status, answer["status"], answer["retry"], answer["error_category"]) == (200, "failed", False, "validation")
    assert event_count(db) == 1
    row = event_row(db, answer["event_id"])
    assert (row["processing_status"], row["error_category"], row["next_retry_at"]) == ("failed", "validation", None)
    assert row["raw_payload"] == body.decode("utf-8", errors="replace")
    # The same body again is the same row, one more attempt.
    assert receiver.deliver(body)[1]["event_id"] == answer["event_id"]
    assert event_count(db) == 1


def test_a_checkout_event_missing_fields_is_recorded_as_a_validation_failure(receiver, db):
    event = checkout_session_event("checkout.session.completed")
    del event["data"]["object"]["payment_status"]
    status, answer = receiver.deliver(event)
    assert (status, answer["status"], answer["error_category"], answer["retry"]) == (200, "failed", "validation", False)
    assert "payment_status is missing" in answer["error"]
    tracked = event_row(db, event["id"])
    assert (tracked["processing_status"], tracked["error_category"], tracked["next_retry_at"]) == ("failed", "validation", None)
    assert (tracked["recovery_action"], tracked["alert_level"]) == ("fix_and_retry", "critical")
    assert "payment_status is missing" in tracked["error_message"]
    assert tracked["payload"] == event  # kept whole for whoever looks into it


def test_an_unknown_event_type_is_recorded_and_completed_as_ignored(receiver, db):
    event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": "invoice.paid",
             "created": int(time.time()), "livemode": False, "data": {"object": {"id": "in_1", "object": "invoice"}}}
    status, answer = receiver.deliver(event)
    assert (status, answer["status"]) == (200, "ignored")
    tracked = event_row(db, event["id"])
    assert (tracked["processing_status"], tracked["outcome"], tracked["event_type"]) == ("completed", "ignored", "invoice.paid")


def test_a_one_megabyte_event_is_processed_and_stored_whole(receiver, db):
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    event["data"]["object"]["metadata"] = {"notes": "x" * (1024 * 1024)}
    status, answer = receiver.deliver(event)
    assert (status, answer["status"]) == (200, "processed")
    assert registration_row(db, reg)["processing_status"] == "completed"
    with db.connect() as conn:
        stored = conn.execute(sa.text("""SELECT length(payload -> 'data' -> 'object' -> 'metadata' ->> 'notes')
                                         FROM webhook_events WHERE stripe_event_id = :id"""), {"id": event["id"]}).scalar()
    assert stored == 1024 * 1024


def test_a_body_over_the_limit_gets_413_and_writes_nothing(receiver, db):
    body = b'{"id": "evt_big", "type": "x", "pad": "' + b"y" * MAX_BODY_BYTES + b'"}'
    status, answer = receiver.deliver(body)
    assert (status, answer["reason"]) == (413, "too_large")
    assert event_count(db) == 0


def test_health_reports_the_database(receiver):
    assert receiver.request("GET", "/healthz") == (200, {"status": "ok"})


def test_with_the_database_down_deliveries_get_503_and_health_says_why(db):
    unreachable = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/postgres")
    try:
        with ServerThread(Receiver(engine=unreachable, webhook_secret=SECRET)) as down:
            status, answer = down.deliver(checkout_session_event("checkout.session.completed"))
            assert (status, answer["status"]) == (503, "unavailable")
            status, answer = down.request("GET", "/healthz")
            # healthy or not, and an id for the log line; nothing about where the database is
            assert status == 503 and set(answer) == {"status", "error_id"}
            assert "127.0.0.1" not in json.dumps(answer) and "postgres" not in json.dumps(answer)
    finally:
        unreachable.dispose()


def end_pooled_sessions(engine, admin, count: int) -> None:
    """Fill ``engine``'s pool with ``count`` connections, then have the server end their
    sessions (as a restart or a failover does) while they wait in the pool."""
    conns = [engine.connect() for _ in range(count)]
    pids = [conn.connection.driver_connection.info.backend_pid for conn in conns]
    for conn in conns:
        conn.close()
    with admin.connect() as conn:
        for pid in pids:  # waits up to 5 s for each session to be gone
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()


def test_right_after_the_server_ended_the_pooled_sessions_a_delivery_succeeds_at_once(database_url, db, caplog):
    # The receiver's own engine, as deployed (from DATABASE_URL): its pool hands connections
    # out unchecked, so the claim meets a dead one and is made again on a new connection.
    receiver = Receiver(webhook_secret=SECRET, pool_size=3)
    with ServerThread(receiver) as server, caplog.at_level(logging.INFO, logger="tracking.tracker"):
        end_pooled_sessions(receiver.engine, db, 3)
        reg = registration(db)
        event = checkout_session_event("checkout.session.completed", registration_id=reg)
        status, answer = server.deliver(event)
        assert (status, answer["status"], answer["attempt"]) == (200, "processed", 1)
        assert "claiming again on a new connection" in caplog.text  # the dead connection was met
        assert registration_row(db, reg)["processing_status"] == "completed"
        row = event_row(db, event["id"])
        assert (row["processing_status"], row["attempts"]) == ("completed", 1)

        # A signed body that cannot be processed is claimed without the liveness lock: the same.
        caplog.clear()
        end_pooled_sessions(receiver.engine, db, 3)
        status, answer = server.deliver(b"not json")
        assert (status, answer["status"], answer["retry"]) == (200, "failed", False)
        assert "claiming again on a new connection" in caplog.text

        # A health check on a dead pooled connection asks again on a new one.
        end_pooled_sessions(receiver.engine, db, 3)
        assert server.request("GET", "/healthz") == (200, {"status": "ok"})
        # And nothing is left holding an event's lock.
        with db.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar() == 0


# --- as deployed: uvicorn tracking.receiver:app ------------------------------------------

def uvicorn_process(env: dict) -> tuple[ManagedProcess, int]:
    """``uvicorn tracking.receiver:app`` as deployed, handed a listening loopback socket; its port."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    return ManagedProcess(
        [sys.executable, "-m", "uvicorn", "tracking.receiver:app", "--fd", str(sock.fileno()),
         "--log-level", "info"],
        name="receiver", cwd=REPO, env=env, pass_sockets=[sock],
        ready=http_ready(socket_url(sock) + "/healthz")), port


def test_without_a_webhook_secret_the_receiver_refuses_to_start(database_url):
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_WEBHOOK_SECRET"}
    process, _ = uvicorn_process(env)
    try:
        with pytest.raises(ProcessFailed, match="exited with code"):
            process.start()
        output = process.log()
    finally:
        process.close()
    assert process.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET is not set" in output
    assert "Traceback" not in output


def test_the_receiver_serves_from_the_environment(database_url, db):
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": SECRET}
    process, port = uvicorn_process(env)
    with process:
        reg = registration(db)
        body = json.dumps(checkout_session_event("checkout.session.completed", registration_id=reg)).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/stripe/webhook", body=body, headers={"Stripe-Signature": sign(body)})
        assert conn.getresponse().status == 200
        assert registration_row(db, reg)["processing_status"] == "completed"


def test_signed_json_that_postgresql_cannot_store_is_kept_as_text_and_recorded_failed(receiver, db):
    body = json.dumps({"id": "evt_nul", "type": "invoice.paid", "data": {"object": {"note": "a\u0000b"}}}).encode()
    assert b"\\u0000" in body
    status, answer = receiver.deliver(body)
    assert (status, answer["status"], answer["retry"], answer["event_id"]) == (200, "failed", False, "evt_nul")
    row = event_row(db, "evt_nul")
    assert (row["processing_status"], row["error_category"], row["event_type"]) == ("failed", "validation", "invoice.paid")
    assert row["raw_payload"] == body.decode()  # the text as received, for whoever looks into it
    assert "jsonb" in row["error_message"]
