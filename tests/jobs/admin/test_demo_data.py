"""demo-data: the history it writes has the shape the demo promises, and Stripe's side
holds every reconciliation mismatch kind (checked by running the real reconciliation)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from devharness import ThrowawayDatabase
from jobs.admin import demo_data
from jobs.reconcile import reconciler as reconcile
from jobs.stripe_gateway import gateway_from_settings
from tests.conftest import REPO
from tests.support.factories import add_event

# Close to the real clock: job runs record real durations from it.
NOW = datetime.now(timezone.utc).replace(microsecond=0)
SMALL = {"days": 7, "events_per_day": 300}


def load(engine, **options):
    return demo_data.run(engine, now=NOW, trigger="cli", **{**SMALL, **options})


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def checksum(engine) -> tuple:
    return (scalar(engine, "SELECT md5(string_agg(e::text, '|' ORDER BY e.id)) FROM webhook_events e"),
            scalar(engine, "SELECT md5(string_agg(r::text, '|' ORDER BY r.id)) FROM registrations r"))


def test_same_seed_gives_identical_data_and_another_seed_does_not(db):
    first = load(db, seed=7)
    first_sum = checksum(db)
    again = load(db, seed=7, reset=True)
    assert again.replaced_previous
    assert (again.events, again.registrations, again.failed_events) == \
        (first.events, first.registrations, first.failed_events)
    assert checksum(db) == first_sum
    load(db, seed=8, reset=True)
    assert checksum(db) != first_sum


def test_history_has_the_shape_the_dashboard_shows(db):
    report = load(db)
    assert report.events >= 7 * 300
    with db.connect() as conn:
        statuses = dict(conn.execute(sa.text(
            "SELECT processing_status, count(*) FROM webhook_events GROUP BY 1")).all())
        registration_statuses = set(conn.execute(sa.text(
            "SELECT DISTINCT processing_status FROM registrations")).scalars())
        types = set(conn.execute(sa.text("SELECT DISTINCT event_type FROM webhook_events")).scalars())
        by_hour = dict(conn.execute(sa.text("""
            SELECT extract(hour FROM created_at AT TIME ZONE 'UTC')::int, count(*)
            FROM webhook_events GROUP BY 1""")).all())

    assert set(statuses) == {"pending", "processing", "completed", "failed"}
    assert registration_statuses == {"pending", "completed", "failed", "expired"}
    assert 0.02 <= statuses["failed"] / report.events <= 0.05
    assert {"checkout.session.completed", "checkout.session.expired",
            "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed",
            "payment_intent.succeeded", "charge.refunded", "customer.created"} <= types
    # Daily rhythm: the afternoon (UTC) is far busier than the small hours.
    assert sum(by_hour.get(h, 0) for h in range(12, 18)) > 2.5 * sum(by_hour.get(h, 0) for h in range(0, 6))


def test_outage_hour_is_a_burst_of_failures(db):
    report = load(db)
    with db.connect() as conn:
        failed_per_hour = conn.execute(sa.text("""
            SELECT date_trunc('hour', created_at) AS hour, count(*) AS failed
            FROM webhook_events WHERE processing_status = 'failed'
            GROUP BY 1 ORDER BY failed DESC""")).all()
    worst_hour, worst = failed_per_hour[0]
    assert worst_hour == report.outage_start
    others = [failed for _, failed in failed_per_hour[1:]]
    assert worst >= 4 * max(others)


def test_retries_stuck_events_durations_and_stale_pendings(db):
    load(db)
    stuck_before = NOW - timedelta(minutes=15)
    with db.connect() as conn:
        row = conn.execute(sa.text("""
            SELECT count(*) FILTER (WHERE attempts > 1 AND processing_status = 'failed')    AS retried_failed,
                   count(*) FILTER (WHERE attempts > 1 AND processing_status = 'completed') AS recovered,
                   count(*) FILTER (WHERE processing_status = 'processing'
                                      AND processing_started_at < :stuck_before)            AS stuck,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY processing_duration_ms)
                       FILTER (WHERE processing_status = 'completed')                       AS median_ms,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY processing_duration_ms)
                       FILTER (WHERE processing_status = 'completed')                       AS p99_ms,
                   max(processed_at)                                                        AS last_processed
            FROM webhook_events"""), {"stuck_before": stuck_before}).mappings().one()
        stale_pending = conn.execute(sa.text("""
            SELECT count(*) FROM registrations
            WHERE processing_status = 'pending' AND created_at < :cutoff"""),
            {"cutoff": NOW - timedelta(days=7)}).scalar()
        recovered_detail = conn.execute(sa.text("""
            SELECT error_details FROM webhook_events
            WHERE attempts > 1 AND processing_status = 'completed' LIMIT 1""")).scalar()
    assert row["retried_failed"] > 0 and row["recovered"] > 0
    assert row["stuck"] >= 3
    assert row["p99_ms"] > 5 * row["median_ms"]  # long-tailed
    assert row["last_processed"] <= NOW  # nothing finished in the future
    assert stale_pending > 0
    assert recovered_detail["recovered_after"]["error_message"]


def test_failures_of_every_kind_with_ids_to_normalise(db):
    load(db, events_per_day=1000)
    with db.connect() as conn:
        failures = conn.execute(sa.text("""
            SELECT error_category, error_message FROM webhook_events
            WHERE processing_status = 'failed'""")).all()
    categories = {category for category, _ in failures}
    messages = " ".join(message for _, message in failures)
    assert {"network", "validation", "database", "stripe"} <= categories
    for telltale in ("Timeout after", "Invalid customer email", "deadlock detected",
                     "duplicate key value", "Too many requests"):
        assert telltale in messages
    assert all(any(ch.isdigit() for ch in message) for _, message in failures)


def test_payloads_are_stripe_events_linked_to_registrations(db):
    load(db)
    with db.connect() as conn:
        payload, status, session_id, registration_id = conn.execute(sa.text("""
            SELECT e.payload, r.processing_status, r.stripe_checkout_session_id, r.id::text
            FROM webhook_events e
            JOIN registrations r ON r.stripe_checkout_session_id = e.payload #>> '{data,object,id}'
            WHERE e.event_type = 'checkout.session.completed' AND e.processing_status = 'completed'
            LIMIT 1""")).one()
    assert payload["object"] == "event" and payload["type"] == "checkout.session.completed"
    assert payload["id"].startswith("evt_") and isinstance(payload["created"], int)
    session = payload["data"]["object"]
    assert session["object"] == "checkout.session" and session["id"] == session_id
    assert session["client_reference_id"] == registration_id
    assert status in ("completed", "pending")  # pending: paid by a delayed method, still waiting


def test_reconcile_finds_every_mismatch_kind(db, stripe_server, tmp_path):
    state_path = tmp_path / "stripe.json"
    report = load(db, stripe_state_path=state_path)
    for session in json.loads(state_path.read_text())["checkout_sessions"]:
        stripe_server.state.add_checkout_session(session)

    result = reconcile.run(db, now=NOW, gateway=gateway_from_settings(rate_limit_backoff_s=0.02),
                           dry_run=True, trigger="cli")

    assert set(result.by_kind) == set(demo_data.MISMATCH_KINDS)
    planted = report.mismatches_planted
    # Kinds only the deliberate rows produce appear exactly as often as planted; lost
    # webhooks (failed deliveries) add more of the two auto-fixable kinds.
    for kind in ("paid_but_failed", "paid_no_registration", "completed_not_paid",
                 "completed_missing_in_stripe", "amount_mismatch"):
        assert result.by_kind[kind] == planted[kind], kind
    assert result.by_kind["paid_but_pending"] >= planted["paid_but_pending"]
    assert result.by_kind["expired_but_pending"] >= planted["expired_but_pending"]


def test_stripe_state_lists_undelivered_events(db, tmp_path):
    state_path = tmp_path / "stripe.json"
    load(db, stripe_state_path=state_path)
    state = json.loads(state_path.read_text())
    assert not list(tmp_path.glob("*.partial"))
    undelivered = [e for e in state["events"] if e.get("_delivery_success") is False]
    assert undelivered and all(e["pending_webhooks"] > 0 for e in undelivered)
    sessions = {s["id"] for s in state["checkout_sessions"]}
    assert all(e["data"]["object"]["id"] in sessions for e in undelivered
               if e["type"] == "checkout.session.completed")


def test_second_load_without_reset_refuses_and_changes_nothing(db):
    first = load(db)
    before = checksum(db)
    with pytest.raises(demo_data.DemoDataExists, match="--reset"):
        load(db, seed=99)
    assert checksum(db) == before
    assert scalar(db, "SELECT count(*) FROM webhook_events") == first.events


def test_reset_never_replaces_rows_it_did_not_write(db):
    with db.begin() as conn:
        event_id = add_event(conn, created_at=NOW - timedelta(hours=1))
    with pytest.raises(demo_data.DemoDataExists, match="did not write"):
        load(db, reset=True)
    assert scalar(db, "SELECT count(*) FROM webhook_events WHERE stripe_event_id = :id", id=event_id) == 1


def test_command_line_loads_then_refuses_a_second_load(db, tmp_path):
    env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "jobs", "demo-data", "--days", "2", "--events-per-day", "100",
               "--now", NOW.isoformat()]
    first = subprocess.run(command + ["--json"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["events"] >= 200
    assert summary["stripe_state_path"] == str(tmp_path / demo_data.STATE_FILE_NAME)
    assert (tmp_path / demo_data.STATE_FILE_NAME).exists()

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert "--reset" in second.stderr and "Traceback" not in second.stderr
    assert scalar(db, "SELECT count(*) FROM webhook_events") == summary["events"]


def test_unmigrated_database_asks_for_migrate(database_url):
    with ThrowawayDatabase(server_url=database_url, migrate=False, prefix="demo_data_unmigrated") as database:
        empty = sa.create_engine(database.url)
        try:
            with pytest.raises(demo_data.ConfigError, match="migrate"):
                demo_data.run(empty, now=NOW, days=1, events_per_day=10, trigger="cli")
        finally:
            empty.dispose()


SCHEMA = """
    SELECT 'index', indexdef FROM pg_indexes
    WHERE tablename IN ('webhook_events', 'registrations', 'webhook_event_attempts')
    UNION ALL
    SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint
    WHERE conrelid IN ('webhook_events'::regclass, 'registrations'::regclass, 'webhook_event_attempts'::regclass)
    UNION ALL
    SELECT 'trigger', tgrelid::regclass::text || ' ' || tgname || ' ' || tgenabled::text
    FROM pg_trigger
    WHERE tgrelid IN ('webhook_events'::regclass, 'registrations'::regclass, 'webhook_event_attempts'::regclass)
      AND NOT tgisinternal"""


def test_load_leaves_the_schema_as_it_was_and_the_rollups_equal_the_rows(db):
    from queries import fetch_df
    from tests.migrations.test_error_rollups import assert_error_queries_match
    from tests.migrations.test_registration_rollups import RAW_FUNNEL, RAW_PAYMENTS

    with db.connect() as conn:
        before = set(conn.execute(sa.text(SCHEMA)).all())
    load(db)
    with db.connect() as conn:
        assert set(conn.execute(sa.text(SCHEMA)).all()) == before  # keys, indexes, triggers (enabled) back
        window = {"start": NOW - timedelta(days=8, minutes=7), "end": NOW}
        funnel = fetch_df(conn, "funnel_by_bucket", **window, bucket="day")
        assert len(funnel) >= 7
        assert [tuple(row) for row in funnel.itertuples(index=False)] == \
            [tuple(row) for row in conn.execute(sa.text(RAW_FUNNEL), {**window, "bucket": "day"})]
        payments = fetch_df(conn, "completed_payments_by_currency", **window)
        assert [tuple(row) for row in payments.itertuples(index=False)] == \
            [tuple(row) for row in conn.execute(sa.text(RAW_PAYMENTS), window)]
        # The error rollups, whose triggers were paused too, serve the Errors page's numbers.
        assert_error_queries_match(conn, NOW - timedelta(days=3, minutes=7), NOW)


def test_load_interrupted_while_the_events_stream_in_leaves_the_database_as_it_was(db, tmp_path):
    with db.connect() as conn:
        schema = set(conn.execute(sa.text(SCHEMA)).all())
    env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "jobs", "demo-data", "--days", "30", "--events-per-day", "5000",
               "--no-stripe-state", "--now", NOW.isoformat()]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        # Ctrl+C once the loading session has staged its events: the second session is
        # staging its own or streaming the rows in.
        for line in process.stdout:
            output.append(line)
            if line.startswith("computing") and line.rstrip().endswith("s)"):
                process.send_signal(signal.SIGINT)
                break
        output.append(process.communicate(timeout=120)[0])
    finally:
        process.kill()
    text = "".join(output)
    assert process.returncode != 0, text
    assert "loaded" not in text
    assert scalar(db, "SELECT count(*) FROM webhook_events") == 0
    assert scalar(db, "SELECT count(*) FROM webhook_event_attempts") == 0
    assert scalar(db, "SELECT count(*) FROM registrations") == 0
    with db.connect() as conn:
        assert set(conn.execute(sa.text(SCHEMA)).all()) == schema
    # And nothing stops a load afterwards.
    assert load(db).events > 0


def test_every_table_the_load_fills_is_vacuumed_and_analyzed(db):
    """The first page after a load reads tables with statistics and a visibility map, like
    every later one (the Errors page's first render after a 10M load took seconds while the
    attempts and error rollups had neither)."""
    from devharness import project_tables

    demo_data.run(db, now=NOW, days=3, events_per_day=200, trigger="cli")
    with db.connect() as conn:
        filled = [table for table in project_tables(conn) if table != "job_runs"  # the load's own run record
                  and conn.execute(sa.text(f'SELECT EXISTS (SELECT FROM "{table}")')).scalar()]
        stats = {row.relname: row for row in conn.execute(sa.text(
            "SELECT relname, last_vacuum, last_analyze FROM pg_stat_user_tables"))}
    assert "webhook_event_attempts" in filled and "webhook_error_events" in filled
    assert [t for t in filled if stats[t].last_vacuum is None or stats[t].last_analyze is None] == []
