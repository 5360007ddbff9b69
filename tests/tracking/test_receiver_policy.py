"""The reference receiver under uvicorn answers by the error policy (a validation failure 2xx
without retry, a dropped database 5xx with a planned retry) and keeps its internals to itself
(no SQL, parameters or tracebacks in its replies; slow or half-sent requests cut off)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from devharness import AsgiServerThread
from local_stripe.objects import checkout_session_event
from tests.support.factories import add_registration
from tests.tracking.test_receiver import SECRET, ServerThread, event_count, event_row, registration_row, sign
from tracking.receiver import MAX_JSON_DEPTH, Receiver, json_depth_exceeds

NEW_SECRET, OLD_SECRET = "whsec_rotated_new", "whsec_rotated_old"


@pytest.fixture(scope="module")
def server(engine):
    with ServerThread(Receiver(engine=engine, webhook_secret=f"{NEW_SECRET}, {OLD_SECRET}",
                               body_timeout_s=1.5)) as running:
        yield running


@pytest.fixture
def receiver(server, db):
    return server


def registration(engine, **kwargs) -> str:
    with engine.begin() as conn:
        return add_registration(conn, created_at=datetime.now(timezone.utc), **kwargs)


def test_old_and_new_secret_both_verify_during_a_rotation(receiver, db):
    for secret in (NEW_SECRET, OLD_SECRET):
        event = checkout_session_event("payment_intent.created")
        status, answer = receiver.deliver(event, secret=secret)
        assert (status, answer["status"]) == (200, "ignored"), secret
    status, answer = receiver.deliver(checkout_session_event("payment_intent.created"), secret=SECRET)
    assert (status, answer["reason"]) == (400, "bad_signature")
    assert event_count(db) == 2


def test_a_signature_dated_beyond_the_tolerance_in_the_future_is_refused(receiver, db):
    event = checkout_session_event("payment_intent.created")
    status, answer = receiver.deliver(event, secret=NEW_SECRET, timestamp=int(time.time()) + 301)
    assert (status, answer["reason"]) == (400, "bad_signature") and "tolerance" in answer["detail"]
    assert event_count(db) == 0
    status, _ = receiver.deliver(event, secret=NEW_SECRET, timestamp=int(time.time()) + 200)  # clock skew
    assert status == 200


def test_a_validation_failure_is_answered_2xx_without_retry_and_recorded_failed(receiver, db):
    event = checkout_session_event("checkout.session.completed", amount_total=None)
    event["data"]["object"]["amount_total"] = "forty-two"
    status, answer = receiver.deliver(event, secret=NEW_SECRET)
    assert status == 200
    assert (answer["status"], answer["retry"], answer["error_category"]) == ("failed", False, "validation")
    row = event_row(db, event["id"])
    assert (row["processing_status"], row["error_category"], row["next_retry_at"]) == ("failed", "validation", None)


def backend_waiting_on_a_lock(engine, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%registrations%'"
            )).scalar()
            if pid:
                return pid
            conn.rollback()
            time.sleep(0.05)
    raise AssertionError("the receiver never waited for the registration lock")


def test_a_dropped_database_connection_is_answered_5xx_with_a_planned_retry(receiver, db, caplog):
    reg = registration(db)
    event = checkout_session_event("checkout.session.completed", registration_id=reg)
    answers = []
    with db.connect() as holder:
        # A second connection holds the registration's row lock, so the receiver's attempt
        # waits on it; then its backend is terminated, as a failover or restart would.
        holder.execute(sa.text("SELECT 1 FROM registrations WHERE id = :id FOR UPDATE"), {"id": reg})
        with caplog.at_level(logging.WARNING, logger="tracking.receiver"):
            delivery = threading.Thread(target=lambda: answers.append(receiver.deliver(event, secret=NEW_SECRET)))
            delivery.start()
            pid = backend_waiting_on_a_lock(db)
            holder.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            holder.rollback()
            delivery.join(30)
    status, answer = answers[0]
    assert status == 500
    assert (answer["status"], answer["retry"], answer["error_category"]) == ("failed", True, "database")
    text = json.dumps(answer)
    for internal in ("SELECT", "registrations", "Traceback", "psycopg", reg):
        assert internal not in text, internal  # no SQL, parameters or tracebacks in the reply
    assert any(answer["error_id"] in record.getMessage() for record in caplog.records)
    row = event_row(db, event["id"])
    assert (row["processing_status"], row["error_category"], row["recovery_action"]) == ("failed", "database", "retry_soon")
    assert row["next_retry_at"] is not None and row["next_retry_at"] > row["processed_at"]
    assert registration_row(db, reg)["processing_status"] == "pending"
    # Stripe's retry (or the monitor's) then completes it.
    status, answer = receiver.deliver(event, secret=NEW_SECRET)
    assert (status, answer["status"], answer["attempt"]) == (200, "processed", 2)
    assert registration_row(db, reg)["processing_status"] == "completed"


def test_nesting_depth_is_measured_not_guessed_from_the_number_of_brackets():
    deep = lambda n: "[" * n + "]" * n
    assert not json_depth_exceeds(deep(MAX_JSON_DEPTH))
    assert json_depth_exceeds(deep(MAX_JSON_DEPTH + 1))
    many_shallow = json.dumps({"data": [{"id": i, "tags": []} for i in range(200)]})
    assert not json_depth_exceeds(many_shallow)
    assert not json_depth_exceeds(json.dumps({"text": "[" * 500}))  # brackets in a string do not nest
    assert json_depth_exceeds(many_shallow[:-1] + ', "x": ' + deep(MAX_JSON_DEPTH) + "}")


def test_absurdly_nested_json_is_kept_and_answered_without_a_traceback(receiver, db):
    deep = b'{"id": "evt_deep", "type": "invoice.paid", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, answer = receiver.deliver(deep, secret=NEW_SECRET)
    assert (status, answer["status"], answer["retry"], answer["event_id"]) == (200, "failed", False, "evt_deep")
    row = event_row(db, "evt_deep")
    assert row["error_category"] == "validation" and str(MAX_JSON_DEPTH) in row["error_message"]
    assert len(row["raw_payload"]) == len(deep)


def test_a_body_that_does_not_arrive_in_time_is_dropped(receiver, db):
    body = json.dumps(checkout_session_event("payment_intent.created")).encode()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(b"POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\nStripe-Signature: {sign(body, NEW_SECRET)}\r\n\r\n".encode()
                     + body[:20])
        started = time.monotonic()
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 8
    assert event_count(db) == 0


def test_an_unsupported_payload_shape_is_a_validation_failure(receiver, db):
    event = {"id": f"evt_{uuid.uuid4().hex[:20]}", "type": "checkout.session.completed", "data": "not an object"}
    status, answer = receiver.deliver(event, secret=NEW_SECRET)
    assert (status, answer["retry"], answer["error_category"]) == (200, False, "validation")
    assert "data.object" in answer["error"] and "Traceback" not in json.dumps(answer)


def test_served_with_serve_config_half_sent_headers_are_cut_off(engine, db):
    from tracking.receiver import server_config

    config = server_config(Receiver(engine=engine, webhook_secret=NEW_SECRET), header_timeout_s=1.0,
                           log_level="warning")
    with AsgiServerThread(config=config) as server:
        port = server.port
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        for client in slow:
            client.sendall(b"POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nStripe-Sig")
        started = time.monotonic()
        assert all(client.recv(1024) == b"" for client in slow)  # closed by the server
        assert time.monotonic() - started < 8
        for client in slow:
            client.close()
        # An ordinary client, two requests on one kept-alive connection, is served.
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):
            client.request("GET", "/healthz")
            response = client.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
        client.close()


def test_python_m_tracking_receiver_serves_with_the_time_limits(database_url, db):
    from devharness import ManagedProcess, http_ready, listening_socket, socket_url

    sock = listening_socket(inheritable=True)
    url = socket_url(sock)
    port = sock.getsockname()[1]
    command = [sys.executable, "-m", "tracking.receiver", "--fd", str(sock.fileno()), "--header-timeout", "1"]
    with ManagedProcess(command, name="receiver", pass_sockets=[sock], ready=http_ready(f"{url}/healthz"),
                        extra_env={"STRIPE_WEBHOOK_SECRET": f"{NEW_SECRET},{OLD_SECRET}"}):
        body = json.dumps(checkout_session_event("payment_intent.created")).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/stripe/webhook", body=body, headers={"Stripe-Signature": sign(body, OLD_SECRET)})
        assert conn.getresponse().status == 200
        conn.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            assert slow.recv(1024) == b"" and time.monotonic() - started < 8
    assert event_count(db) == 1
