"""jobs.replay.redeliver: a stored event re-delivered to a real receiver under uvicorn, as Stripe would."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import get_settings
from jobs.replay.redeliver import Redeliverer, event_body, webhook_secrets
from local_stripe.objects import checkout_session_event
from tests.tracking.test_receiver import SECRET, ServerThread, event_row
from tracking.receiver import WEBHOOK_PATH, Receiver


@pytest.fixture(scope="module")
def server(engine):
    with ServerThread(Receiver(engine=engine, webhook_secret=SECRET)) as running:
        yield running


def url(server) -> str:
    return f"http://127.0.0.1:{server.port}{WEBHOOK_PATH}"


def test_a_redelivered_event_is_accepted_by_the_receiver_and_recorded(server, db):
    event = checkout_session_event("payment_intent.created")
    with Redeliverer(url(server), SECRET) as redeliver:
        result = redeliver.deliver(event_body({"payload": event}))
    assert (result.reached, result.accepted, result.completed) == (True, True, True)
    assert result.answer["event_id"] == event["id"]
    assert event_row(db, event["id"])["processing_status"] == "completed"


def test_a_wrong_secret_is_refused_by_the_receiver(server, db):
    event = checkout_session_event("payment_intent.created")
    with Redeliverer(url(server), "whsec_not_the_one") as redeliver:
        result = redeliver.deliver(event_body({"payload": event}))
    assert result.reached and not result.accepted and result.status == 400
    assert event_row(db, event["id"]) is None


def test_an_endpoint_that_is_down_gives_no_answer_instead_of_raising(down_port):
    with Redeliverer(f"http://127.0.0.1:{down_port}/stripe/webhook", SECRET, timeout_s=5) as redeliver:
        result = redeliver.deliver(b'{"id": "evt_x", "type": "x"}')
    assert not result.reached and "Connect" in result.error


def test_the_kept_raw_text_is_what_gets_redelivered():
    raw = '{"id":"evt_nul","type":"x","data":{"note":"a\\u0000b"}}'
    assert event_body({"raw_payload": raw, "payload": {"unstorable": True}}) == raw.encode()


def test_settings_give_the_first_secret_and_require_the_url(monkeypatch):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", " whsec_new , whsec_old,")
    monkeypatch.delenv("MONITOR_REPLAY_URL", raising=False)
    assert webhook_secrets(get_settings().STRIPE_WEBHOOK_SECRET) == ["whsec_new", "whsec_old"]
    with pytest.raises(ConfigError, match="MONITOR_REPLAY_URL is not set"):
        Redeliverer.from_settings()
    monkeypatch.setenv("MONITOR_REPLAY_URL", "http://127.0.0.1:1/hook")
    with Redeliverer.from_settings() as redeliver:
        assert redeliver.secret == "whsec_new"
    monkeypatch.setenv("MONITOR_REPLAY_URL", "ftp://x")
    with pytest.raises(ConfigError, match="MONITOR_REPLAY_URL"):
        get_settings()
