"""sweep --replay: missed events re-delivered through jobs.replay.redeliver (the path retry uses) to
the reference receiver under uvicorn, their registrations applied, recovered once completed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.settings import DEFAULT_SWEEP_EVENT_TYPES, sweep_event_types
from devharness import AsgiServerThread, refused_port
from jobs.replay import redeliver as delivery
from jobs.replay import sweep
from jobs.stripe_gateway import gateway_from_settings
from local_stripe import checkout_session
from tests.support.factories import add_registration
from tracking.receiver import Receiver

SECRET = "whsec_test_sweep_replay"

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TYPES = sweep_event_types(DEFAULT_SWEEP_EVENT_TYPES)


@pytest.fixture(scope="module")
def receiver(engine):
    with AsgiServerThread(Receiver(engine=engine, webhook_secret=SECRET)) as running:
        yield running


def run_sweep(engine, redeliver):
    return sweep.run(engine, now=NOW, gateway=gateway_from_settings(requests_per_second=0),
                     event_types=TYPES, lookback_hours=24, redeliver=redeliver)


def rows(engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def plant(db, stripe_server) -> tuple[str, str]:
    with db.begin() as conn:
        paid_reg = add_registration(conn, created_at=NOW - timedelta(hours=3), amount_total=9900)
        expired_reg = add_registration(conn, created_at=NOW - timedelta(hours=3))
    paid = checkout_session(created=int((NOW - timedelta(hours=2)).timestamp()), amount_total=9900,
                            client_reference_id=paid_reg)
    stripe_server.add_event("checkout.session.completed", paid, id="evt_paid_never_came",
                            created=int((NOW - timedelta(hours=2)).timestamp()), pending_webhooks=1,
                            delivery_success=False)
    gone = checkout_session(created=int((NOW - timedelta(hours=2)).timestamp()), status="expired",
                            amount_total=2500, client_reference_id=expired_reg)
    stripe_server.add_event("checkout.session.expired", gone, id="evt_expired_answered_2xx",
                            created=int((NOW - timedelta(hours=1)).timestamp()), pending_webhooks=0)
    return paid_reg, expired_reg


def test_replay_delivers_through_the_receiver_and_marks_recovered(db, stripe_server, receiver):
    paid_reg, expired_reg = plant(db, stripe_server)
    with delivery.Redeliverer(f"{receiver.url}/stripe/webhook", SECRET,
                              source="sweep") as redeliver:
        report = run_sweep(db, redeliver)

    assert (report.missing_found, report.replayed, report.recovered) == (2, 2, 2)
    assert report.still_missing == 0 and report.status == "completed"
    missed = {r["stripe_event_id"]: r for r in rows(db, "SELECT * FROM missed_events")}
    assert {r["status"] for r in missed.values()} == {"recovered"}
    assert all(r["replayed_at"] and r["recovered_at"] for r in missed.values())
    recorded = {r["stripe_event_id"]: r for r in rows(
        db, "SELECT stripe_event_id, processing_status, created_at FROM webhook_events")}
    assert {k: v["processing_status"] for k, v in recorded.items()} == {
        "evt_paid_never_came": "completed", "evt_expired_answered_2xx": "completed"}
    # Money at risk first: the paid 99.00 before the expired 25.00.
    assert recorded["evt_paid_never_came"]["created_at"] <= recorded["evt_expired_answered_2xx"]["created_at"]
    status = {r["id"]: r["processing_status"] for r in rows(db, "SELECT id::text, processing_status FROM registrations")}
    assert status == {paid_reg: "completed", expired_reg: "expired"}

    again = run_sweep(db, None)
    assert again.missing_found == 0 and again.still_missing == 0


def test_a_replay_that_gets_no_answer_keeps_the_event_missing(db, stripe_server):
    plant(db, stripe_server)
    with refused_port() as port, delivery.Redeliverer(
            f"http://127.0.0.1:{port}/stripe/webhook", SECRET, source="sweep", timeout_s=2) as redeliver:
        report = run_sweep(db, redeliver)
    assert (report.replayed, report.replay_failed, report.recovered) == (0, 2, 0)
    assert report.still_missing == 2 and report.status == "needs_review"
    missed = rows(db, "SELECT status, replay_attempts, last_replay_error, replayed_at FROM missed_events")
    assert all(r["status"] == "missing" and r["replay_attempts"] == 1 and r["replayed_at"] is None
               and r["last_replay_error"].startswith("no answer") for r in missed)
