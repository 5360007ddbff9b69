"""The Edge Function kit's rpc mode (supabase-js `.rpc()` with the service-role key) under
real Deno, against a PostgREST stand-in (tests/support/postgrest_standin.py) on the test database:
the same rows, attempts, sources and answers as the direct mode, without the liveness lock."""

from __future__ import annotations

import json
import uuid

import pytest

from devharness import AsgiServerThread, ManagedProcess, line_ready
from devharness.edge_function import KIT, deno_binary
from local_stripe.objects import checkout_session_event
from tests.conftest import REPO
from tests.support.postgrest_standin import postgrest_standin
from tests.support.webhook_conformance import SQL, post

SECRET = "whsec_rpc_mode"
SERVICE_ROLE_KEY = "service-role-key-for-tests"
SCRIPT = REPO / "tests" / "deno" / "rpc_function.ts"


@pytest.fixture(scope="module")
def function(engine):
    if deno_binary() is None:
        pytest.fail("deno is not installed: run `npm ci` in the repository (make test does)")
    with AsgiServerThread(postgrest_standin(engine, SERVICE_ROLE_KEY)) as postgrest:
        process = ManagedProcess(
            [str(deno_binary()), "run", "-A", "--frozen", "--config", str(KIT / "deno.json"), str(SCRIPT)],
            name="rpc-function", cwd=REPO, ready=line_ready(r"Listening on (http://127\.0\.0\.1:\d+)/"),
            extra_env={"SUPABASE_URL": postgrest.url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
                       "STRIPE_WEBHOOK_SECRET": SECRET, "NO_COLOR": "1"})
        with process:
            yield process.ready_value.group(1) + "/functions/v1/stripe-webhook"


def event(event_type: str) -> dict:
    return checkout_session_event(event_type, event_id=f"evt_rpc_{uuid.uuid4().hex[:16]}")


def deliver(url: str, body: dict | bytes, **kwargs) -> tuple[int, dict]:
    return post(url, body if isinstance(body, bytes) else json.dumps(body).encode(), secret=SECRET, **kwargs)


def attempts(db, event_id: str) -> list[str]:
    return [f"{r['source']}:{r['outcome']}" for r in SQL.all(db, "event_sources", id=event_id)]


def test_a_delivery_is_recorded_once_and_a_replay_as_a_replay(function, db):
    ignored = event("payment_intent.created")
    status, answer = deliver(function, ignored)
    assert (status, answer["status"], answer["attempt"]) == (200, "ignored", 1)
    assert deliver(function, ignored)[1]["status"] == "duplicate"
    row = SQL.one(db, "event_rows", id=ignored["id"])
    assert (row["processing_status"], row["attempts"], row["outcome"]) == ("completed", 1, "ignored")

    failing = event("charge.failed")
    status, answer = deliver(function, failing)
    assert (status, answer["status"], answer["retry"], answer["error_category"]) == (200, "failed", False, "validation")
    status, answer = deliver(function, failing, source="retry")
    assert (status, answer["attempt"]) == (200, 2)
    assert attempts(db, failing["id"]) == ["delivery:failed", "retry:failed"]


def test_a_postgrest_error_of_the_handler_is_answered_by_its_sqlstate(function, db):
    refunded = event("charge.refunded")
    status, answer = deliver(function, refunded)
    assert (status, answer["retry"], answer["error_category"], answer["recovery_action"]) == (
        500, True, "database", "retry_soon")
    row = SQL.one(db, "event_rows", id=refunded["id"])
    assert (row["processing_status"], row["error_category"], row["retry_planned"]) == ("failed", "database", True)


def test_bodies_jsonb_cannot_hold_are_kept_as_text(function, db):
    nul = event("payment_intent.created")
    nul["data"]["object"]["metadata"] = {"note": "a\u0000b"}
    status, answer = deliver(function, nul)
    assert (status, answer["status"], answer["error_category"]) == (200, "failed", "validation")
    row = SQL.one(db, "event_rows", id=nul["id"])
    assert (row["processing_status"], row["raw_kept"]) == ("failed", True)
    status, answer = deliver(function, b"not json")
    assert (status, answer["status"], answer["error_category"]) == (200, "failed", "validation")
