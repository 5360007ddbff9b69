"""The Supabase Edge Function kit's example function under real Deno, beyond the conformance
suite: the monitor's `retry` and `sweep --replay` re-deliver into it, a SIGKILL mid-burst
loses and duplicates nothing, and it refuses to start without Supabase's variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from core.settings import DEFAULT_SWEEP_EVENT_TYPES, sweep_event_types
from devharness.edge_function import FUNCTION, deno_binary, edge_function_process, edge_function_serve, function_url
from devharness.scenarios.receiver_crash import receiver_killed_mid_burst
from devharness.scenarios.steps import SECRET
from jobs.replay import redeliver as delivery
from jobs.replay import sweep
from jobs.stripe_gateway import gateway_from_settings
from local_stripe import checkout_session
from local_stripe.objects import checkout_session_event
from queries import fetch_one
from tests.conftest import REPO
from tests.support.webhook_conformance import SQL, post, write

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def function(database_url):
    if deno_binary() is None:
        pytest.fail("deno is not installed: run `npm ci` in the repository (make test does)")
    with edge_function_process(database_url, secret=SECRET) as process:
        yield function_url(process) + "/functions/v1/stripe-webhook"


def attempt_log(engine, event_id: str) -> list[str]:
    return [f"{r['source']}:{r['outcome']}" for r in SQL.all(engine, "event_sources", id=event_id)]


def paid_event(registration_id: str) -> dict:
    return checkout_session_event("checkout.session.completed", registration_id=registration_id,
                                  event_id=f"evt_edge_{uuid.uuid4().hex[:16]}")


def test_jobs_retry_replays_a_fixed_event_into_the_function_as_a_replay(function, db):
    registration_id = str(uuid.uuid4())
    event = paid_event(registration_id)
    status, answer = post(function, json.dumps(event).encode(), secret=SECRET)
    assert (status, answer["status"], answer["retry"]) == (200, "failed", False)  # no registration yet
    write(db, "add_pending_registration", id=registration_id)  # a person fixes the data
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "retry", "--event-id", event["id"], "--json"], cwd=REPO,
        env={**os.environ, "MONITOR_REPLAY_URL": function, "STRIPE_WEBHOOK_SECRET": SECRET},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert SQL.one(db, "event_rows", id=event["id"])["processing_status"] == "completed"
    assert attempt_log(db, event["id"]) == ["delivery:failed", "retry:completed"]
    assert SQL.scalar(db, "registration_status", id=registration_id) == "completed"


def test_sweep_replay_delivers_missed_events_into_the_function(function, db, stripe_server):
    registration_id = str(uuid.uuid4())
    write(db, "add_pending_registration", id=registration_id)
    created = int((NOW - timedelta(hours=2)).timestamp())
    stripe_server.add_event("checkout.session.completed",
                            checkout_session(created=created, amount_total=2500, client_reference_id=registration_id),
                            id="evt_edge_never_came", created=created, pending_webhooks=1, delivery_success=False)
    with delivery.Redeliverer(function, SECRET, source="sweep") as redeliver:
        report = sweep.run(db, now=NOW, gateway=gateway_from_settings(requests_per_second=0),
                           event_types=sweep_event_types(DEFAULT_SWEEP_EVENT_TYPES), lookback_hours=24,
                           redeliver=redeliver)
    assert (report.missing_found, report.replayed, report.recovered) == (1, 1, 1)
    assert attempt_log(db, "evt_edge_never_came") == ["sweep:completed"]
    assert SQL.scalar(db, "registration_status", id=registration_id) == "completed"


def test_a_function_killed_mid_burst_loses_nothing_and_recovers_at_the_next_delivery(database_url, db):
    # Five minutes is the hung-worker limit: recovering in seconds proves the killed
    # function's events were taken over because its sessions ended, not by time.
    result = receiver_killed_mid_burst(
        database_url, events=60, held=3, deadline_s=30,
        serve=edge_function_serve(database_url, secret=SECRET, extra_env={"MONITOR_RECLAIM_MINUTES": "5"}))
    detail = result.detail
    assert detail["processing_at_kill"] >= 3, result  # the kill left attempts mid-way
    # Nothing lost, duplicated or left processing; every event and registration completed
    # once; no liveness lock left held; all within seconds of the redeliveries.
    outcome = (result.lost, result.duplicated, result.stuck, result.after, detail["registrations_completed"],
               detail["leaked_locks"])
    assert outcome == (0, 0, 0, 60, 60, 0), result
    assert result.recover_s is not None and result.recover_s < 30, result


@pytest.mark.parametrize("missing", ["SUPABASE_DB_URL", "STRIPE_WEBHOOK_SECRET"])
def test_the_function_refuses_to_start_without_its_variables(database_url, missing):
    env = {**os.environ, "SUPABASE_DB_URL": database_url, "STRIPE_WEBHOOK_SECRET": SECRET, "PORT": "0",
           "HOST": "127.0.0.1", "NO_COLOR": "1"}
    env.pop(missing)
    result = subprocess.run([str(deno_binary()), "run", "-A", "--frozen", str(FUNCTION)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert missing in result.stderr and "Traceback" not in result.stderr and "at " not in result.stderr


def test_the_dashboard_reads_the_functions_rows_like_any_others(function, db, dashboard_engine):
    event = paid_event(str(uuid.uuid4()))
    event["data"]["object"]["amount_total"] = "forty-two"  # the app cannot process it
    status, _ = post(function, json.dumps(event).encode(), secret=SECRET)
    assert status == 200
    detail = fetch_one(dashboard_engine, "event_detail", stripe_event_id=event["id"])
    assert detail["payload"]["id"] == event["id"]  # stored as the event's JSON object, not a string
    assert (detail["processing_status"], detail["error_category"], detail["recovery_action"]) == (
        "failed", "validation", "fix_and_retry")
    assert detail["error_details"]["exception_type"] == "PayloadError"
    assert detail["error_details"]["classified_as"] == "PayloadError"
    assert detail["error_message"].startswith("PayloadError: event ") and "amount_total" in detail["error_message"]
    assert detail["stripe_created_at"] is not None and detail["livemode"] is False
