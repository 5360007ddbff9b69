"""sweep: Stripe's Events API against webhook_events, through the local Stripe server and the
real stripe library."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.errors import ConfigError, JobFailed
from core.settings import DEFAULT_SWEEP_EVENT_TYPES, sweep_event_types
from jobs.replay import sweep
from jobs.stripe_gateway import gateway_from_settings
from local_stripe import checkout_session
from tests.conftest import REPO
from tests.support.factories import add_event

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
TYPES = sweep_event_types(DEFAULT_SWEEP_EVENT_TYPES)


def ts(delta: timedelta) -> int:
    return int((NOW + delta).timestamp())


def gateway():
    return gateway_from_settings(rate_limit_backoff_s=0.02, requests_per_second=0)


def sweep_now(engine, **options):
    options.setdefault("event_types", TYPES)
    options.setdefault("lookback_hours", 72)
    return sweep.run(engine, now=NOW, gateway=options.pop("gateway", None) or gateway(), **options)


def missed(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM missed_events ORDER BY stripe_event_id")).mappings()
        return {row["stripe_event_id"]: dict(row) for row in rows}


def plant(stripe_server, db):
    """Stripe's side of a small history, and the app's rows for part of it."""
    paid = checkout_session(created=ts(-timedelta(hours=5)), amount_total=4200, currency="eur",
                            client_reference_id="reg-undelivered")
    stripe_server.add_event("checkout.session.completed", paid, id="evt_undelivered",
                            created=ts(-timedelta(hours=5)), pending_webhooks=1,
                            delivery_success=False)
    quiet = checkout_session(created=ts(-timedelta(hours=30)), amount_total=1500, currency="jpy")
    stripe_server.add_event("checkout.session.completed", quiet, id="evt_unrecorded",
                            created=ts(-timedelta(hours=30)), pending_webhooks=0)
    for event_id in ("evt_recorded", "evt_archived", "evt_failed_locally"):
        stripe_server.add_event("checkout.session.expired", checkout_session(
            created=ts(-timedelta(hours=10)), status="expired"), id=event_id,
            created=ts(-timedelta(hours=10)))
    stripe_server.add_event("checkout.session.completed", checkout_session(
        created=ts(-timedelta(hours=80))), id="evt_too_old", created=ts(-timedelta(hours=80)),
        pending_webhooks=1, delivery_success=False)
    stripe_server.add_event("charge.succeeded", {"id": "ch_1", "object": "charge", "amount": 10},
                            id="evt_not_handled", created=ts(-timedelta(hours=1)), pending_webhooks=1)
    with db.begin() as conn:
        add_event(conn, created_at=NOW - timedelta(hours=10), event_id="evt_recorded",
                  event_type="checkout.session.expired")
        add_event(conn, created_at=NOW - timedelta(hours=10), event_id="evt_failed_locally",
                  event_type="checkout.session.expired", status="failed", error="boom")
        conn.execute(sa.text("""
            INSERT INTO webhook_events_archive (id, stripe_event_id, event_type, processing_status,
                payload, attempts, created_at, updated_at)
            VALUES (gen_random_uuid(), 'evt_archived', 'checkout.session.expired', 'completed',
                    '{}'::jsonb, 1, :t, :t)"""), {"t": NOW - timedelta(hours=10)})


def test_finds_what_never_arrived_and_leaves_the_rest_alone(db, stripe_server):
    plant(stripe_server, db)
    report = sweep_now(db)

    rows = missed(db)
    assert set(rows) == {"evt_undelivered", "evt_unrecorded"}
    undelivered, unrecorded = rows["evt_undelivered"], rows["evt_unrecorded"]
    assert undelivered["status"] == "missing" and not undelivered["stripe_says_delivered"]
    assert unrecorded["stripe_says_delivered"]  # Stripe got a 2xx; the app kept nothing
    assert (undelivered["amount"], undelivered["currency"], undelivered["object_type"]) == \
        (4200, "eur", "checkout.session")
    assert undelivered["object_id"].startswith("cs_test_")
    created = NOW - timedelta(hours=5)
    assert undelivered["stripe_created_at"] == created
    assert undelivered["retry_deadline"] == created + timedelta(days=3)
    assert undelivered["retention_deadline"] == created + timedelta(days=30)
    assert undelivered["payload"]["id"] == "evt_undelivered"

    assert (report.stripe_events_found, report.undelivered_found) == (5, 1)
    assert (report.missing_found, report.delivered_unrecorded, report.missing_new) == (2, 1, 2)
    assert report.still_missing == 2 and report.status == "needs_review"
    with db.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM sweep_runs")).mappings().one()
        job = conn.execute(sa.text("SELECT * FROM job_runs WHERE job = 'sweep'")).mappings().one()
    assert (run["status"], run["missing_found"], run["still_missing"]) == ("needs_review", 2, 2)
    assert run["stripe_pages"] == report.stripe_pages == 2  # one page per pass
    assert job["status"] == "needs_review"


def test_a_second_run_finds_nothing_new(db, stripe_server):
    plant(stripe_server, db)
    sweep_now(db)
    first = missed(db)
    again = sweep_now(db)
    assert again.missing_new == 0 and again.missing_found == 2
    assert set(missed(db)) == set(first)
    assert missed(db)["evt_undelivered"]["found_at"] == first["evt_undelivered"]["found_at"]


def test_an_event_that_arrives_later_counts_as_recovered(db, stripe_server):
    plant(stripe_server, db)
    sweep_now(db)
    with db.begin() as conn:
        add_event(conn, created_at=NOW, event_id="evt_undelivered")  # Stripe's own retry got through
        add_event(conn, created_at=NOW, event_id="evt_unrecorded", status="failed", error="x")
    report = sweep_now(db)
    rows = missed(db)
    assert rows["evt_undelivered"]["status"] == "recovered" and rows["evt_undelivered"]["recovered_at"]
    assert rows["evt_unrecorded"]["status"] == "arrived"  # now a failed event: retry's business
    assert report.recovered == 1 and report.still_missing == 0 and report.status == "completed"


def test_dry_run_records_no_event(db, stripe_server):
    plant(stripe_server, db)
    report = sweep_now(db, dry_run=True)
    assert report.missing_found == 2 and missed(db) == {}
    assert {m["stripe_event_id"] for m in report.missing} == {"evt_undelivered", "evt_unrecorded"}
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT dry_run FROM sweep_runs")).scalar_one() is True


def test_events_still_in_flight_are_left_alone(db, stripe_server):
    stripe_server.add_event("checkout.session.completed", checkout_session(created=ts(-timedelta(seconds=30))),
                            id="evt_just_created", created=ts(-timedelta(seconds=30)), pending_webhooks=1)
    report = sweep_now(db)
    assert report.stripe_events_found == 0 and missed(db) == {}
    assert report.window_end == NOW - sweep.IN_FLIGHT_GRACE


def test_a_short_lookback_leaves_older_events_alone(db, stripe_server):
    plant(stripe_server, db)
    report = sweep_now(db, lookback_hours=6)
    assert set(missed(db)) == {"evt_undelivered"} and report.stripe_events_found == 1


@pytest.mark.parametrize("hours", [0, 721, 24 * 31])
def test_a_lookback_outside_stripes_30_days_is_refused(db, stripe_server, hours):
    with pytest.raises(ConfigError, match="between 1 and 720"):
        sweep_now(db, lookback_hours=hours)
    assert stripe_server.counts["list_events"] == 0


def test_a_429_is_waited_out(db, stripe_server):
    plant(stripe_server, db)
    stripe_server.fail_next(2, status=429, endpoint="list_events")
    report = sweep_now(db)
    assert set(missed(db)) == {"evt_undelivered", "evt_unrecorded"}
    # Two waited out, and one request listed the webhook endpoints (not an event page).
    assert report.rate_limited == 2 and report.stripe_requests == report.stripe_pages + 2 + 1


def test_429s_beyond_the_retries_fail_the_run_and_record_nothing(db, stripe_server):
    plant(stripe_server, db)
    stripe_server.fail_next(50, status=429, endpoint="list_events")
    with pytest.raises(JobFailed, match="429"):
        sweep_now(db, gateway=gateway_from_settings(rate_limit_backoff_s=0.001, rate_limit_retries=2,
                                                    requests_per_second=0))
    assert missed(db) == {}
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM sweep_runs")).scalar_one() == "failed"


def test_pages_are_the_fewest_stripe_allows(db, stripe_server):
    for n in range(250):
        stripe_server.add_event("checkout.session.completed", checkout_session(
            created=ts(-timedelta(minutes=n + 3))), id=f"evt_{n:04d}",
            created=ts(-timedelta(minutes=n + 3)), pending_webhooks=1 if n < 120 else 0)
    report = sweep_now(db)
    assert report.stripe_events_found == 250 and report.missing_found == 250
    assert report.undelivered_found == 120
    assert report.stripe_pages == 3 + 2  # ceil(250/100) + ceil(120/100)
    assert report.stripe_requests == report.stripe_pages + 1  # and the webhook endpoints' list
    assert len(missed(db)) == 250


def test_more_than_twenty_types_and_groups_are_split_as_stripe_requires(db, stripe_server):
    types = [f"custom.event_{n}" for n in range(30)] + ["checkout.session.completed", "invoice.*"]
    filters = sweep.request_filters(types)
    assert [len(f.get("types", [])) for f in filters] == [20, 11, 0] and filters[-1] == {"type": "invoice.*"}
    assert sweep.request_filters(["invoice.paid", "invoice.*", "charge.succeeded"]) == [
        {"types": ["charge.succeeded"]}, {"type": "invoice.*"}]
    stripe_server.add_event("invoice.paid", {"id": "in_1", "object": "invoice", "amount": 1},
                            id="evt_invoice", created=ts(-timedelta(hours=1)), pending_webhooks=1)
    stripe_server.add_event("checkout.session.completed", checkout_session(created=ts(-timedelta(hours=1))),
                            id="evt_cs", created=ts(-timedelta(hours=1)))
    sweep_now(db, event_types=types)
    assert set(missed(db)) == {"evt_invoice", "evt_cs"}
    sent = [params for method, path, params in stripe_server.faults.log if path == "/v1/events"]
    assert all(len(p.get("types", [])) <= 20 for p in sent)


def test_command_line(db, stripe_server, database_url, tmp_path):
    plant(stripe_server, db)
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
    refused = subprocess.run([sys.executable, "-m", "jobs", "sweep", "--lookback-hours", "721"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --lookback-hours must be")

    # The CLI works with the wall clock: plant an event of the last hour, and one of the last
    # seconds, which may still be on its way and is left alone.
    ten_minutes_ago = int(time.time()) - 600
    stripe_server.add_event("checkout.session.completed", checkout_session(created=ten_minutes_ago),
                            id="evt_recent", created=ten_minutes_ago, pending_webhooks=1,
                            delivery_success=False)
    stripe_server.add_event("checkout.session.completed", checkout_session(), id="evt_in_flight",
                            pending_webhooks=1)
    found = subprocess.run([sys.executable, "-m", "jobs", "sweep", "--lookback-hours", "1", "--json"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 3, found.stderr
    summary = json.loads(found.stdout)
    assert summary["missing_found"] == 1 and summary["missing"][0]["stripe_event_id"] == "evt_recent"

    dry = subprocess.run([sys.executable, "-m", "jobs", "sweep", "--lookback-hours", "1", "--dry-run"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 3 and "dry run: missing locally: 1" in dry.stdout


def test_the_demo_sweep_finds_the_events_the_app_never_received(db, stripe_server, tmp_path):
    from jobs.admin import demo_data
    from local_stripe import StripeState

    now = datetime.now(timezone.utc).replace(microsecond=0)
    demo_data.run(db, now=now, days=7, events_per_day=200,
                  stripe_state_path=tmp_path / "state.json")
    state = StripeState.from_file(tmp_path / "state.json")
    for evt in state.events.all():
        stripe_server.state.add_event(evt)
    # The events demo-data made for sessions whose event never reached the app.
    planted = {e["id"]: e for e in state.events.all()
               if e["id"] == "evt_1" + hashlib.md5(e["data"]["object"]["id"].encode()).hexdigest()[:23]}
    report = sweep.run(db, now=now, gateway=gateway(), event_types=TYPES, lookback_hours=720)
    rows = missed(db)
    assert set(rows) == set(planted) and rows
    assert report.delivered_unrecorded == sum(1 for e in planted.values() if e["pending_webhooks"] == 0) > 0
    assert any(not r["stripe_says_delivered"] for r in rows.values())


def test_a_refused_stripe_key_is_a_configuration_error(db, stripe_server, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO),
           "STRIPE_API_KEY": "sk_test_revoked_long_ago"}
    result = subprocess.run([sys.executable, "-m", "jobs", "sweep", "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Stripe refused the API key") and "check STRIPE_API_KEY" in line
    assert json.loads(result.stdout)["exit_code"] == 2


def test_the_schedule_runs_a_short_and_a_daily_sweep(db, stripe_server, monkeypatch):
    from jobs.schedule import runner as schedule

    plant(stripe_server, db)
    # A replay URL without a signing secret: the sweep still finds, it only does not replay.
    monkeypatch.setenv("MONITOR_REPLAY_URL", "http://127.0.0.1:9/stripe/webhook")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    for job in ("sweep", "sweep-daily"):
        outcome = schedule.fire(db, job, fire_time=now, now=now)
        assert outcome.status == "ran", outcome
    with db.connect() as conn:
        runs = conn.execute(sa.text(
            "SELECT trigger, lookback_hours, replay FROM sweep_runs ORDER BY id")).all()
    assert [tuple(r) for r in runs] == [("schedule", sweep.SCHEDULED_LOOKBACK_HOURS, False),
                                        ("schedule", sweep.DEFAULT_LOOKBACK_HOURS, False)]
