"""The status verdict (jobs/health/verdict.py) and ``python -m jobs status``: real rows in the
test database in, verdict and exit code out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from core.settings import get_settings
from jobs.health.verdict import DEGRADED, DOWN, HEALTHY, status
from tests.conftest import REPO
from tests.support.factories import add_event, add_registration, processes_alive

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def steady_traffic(conn, *, until: datetime, hours: int = 24, per_hour: int = 10, failed_every: int = 0):
    """Events every few minutes for ``hours`` before ``until`` (one in ``failed_every`` failed)."""
    step = timedelta(hours=1) / per_hour
    moment, n = until - timedelta(hours=hours), 0
    while moment < until:
        n += 1
        failed = failed_every and n % failed_every == 0
        add_event(conn, created_at=moment, status="failed" if failed else "completed", duration_ms=80,
                  event_type="customer.created", error="boom" if failed else None)
        moment += step


def verdict(db, now=NOW, *, alive=True):
    if alive:  # `watch` and `schedule` running, unless a test says otherwise
        with db.begin() as conn:
            processes_alive(conn, at=now - timedelta(seconds=30))
    return status(db, now=now, settings=get_settings())


def test_steady_successful_traffic_is_healthy(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW)
    result = verdict(db)
    assert result.state == HEALTHY and result.reasons == ()


def test_silence_after_steady_traffic_is_down_and_links_the_overview(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW - timedelta(hours=3))
    result = verdict(db)
    assert result.state == DOWN
    [reason] = result.reasons
    assert reason.code == "silence" and "No webhook event for" in reason.summary
    assert reason.link() == "/overview"


def test_failures_well_above_the_usual_rate_degrade_and_link_the_errors(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW - timedelta(hours=1), hours=48)  # usually no failure
        steady_traffic(conn, until=NOW, hours=1, per_hour=30, failed_every=14)  # 2 of 30 now: 7 %
    result = verdict(db)
    assert result.state == DEGRADED
    [reason] = result.reasons
    assert reason.code == "failure_rate" and "(usually 0.0%)" in reason.summary
    assert reason.link() == "/errors?status=failed"


def test_a_critical_failure_rate_is_down(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW - timedelta(hours=1), hours=48)
        steady_traffic(conn, until=NOW, hours=1, per_hour=30, failed_every=2)
    assert verdict(db).state == DOWN


def test_every_other_reason_degrades_and_links_its_page(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW)
        add_event(conn, created_at=NOW - timedelta(hours=1), status="processing")
        add_event(conn, created_at=NOW - timedelta(hours=2), status="failed", error="no such registration",
                  event_type="checkout.session.completed")
        rid = add_registration(conn, created_at=NOW - timedelta(days=1), status="completed",
                               session_id="cs_test_" + "a" * 58)
        run_id = conn.execute(sa.text(
            "INSERT INTO reconciliation_runs (trigger, status, started_at, lookback_days, window_start, window_end)"
            " VALUES ('cli', 'completed', :t, 7, :t, :t) RETURNING id"), {"t": NOW - timedelta(hours=5)}).scalar()
        conn.execute(sa.text(
            "INSERT INTO reconciliation_items (run_id, kind, action, registration_id, stripe_checkout_session_id,"
            " created_at) VALUES (:run, 'completed_not_paid', 'manual_review', :rid, :sid, :t)"),
            {"run": run_id, "rid": rid, "sid": "cs_test_" + "a" * 58, "t": NOW - timedelta(hours=5)})
        conn.execute(sa.text(
            "INSERT INTO job_runs (job, trigger, status, started_at, finished_at, error)"
            " VALUES ('cleanup', 'cli', 'failed', :t, :t, 'Stripe answered 500')"), {"t": NOW - timedelta(hours=4)})
        conn.execute(sa.text(
            "INSERT INTO alerts (rule, fingerprint, severity, status, summary, started_at, fired_at, last_seen_at, page)"
            " VALUES ('failure_rate', 'failure_rate', 'warning', 'firing', 'old blip', :t, :t, :t, 'errors')"),
            {"t": NOW - timedelta(minutes=30)})
    result = verdict(db)
    assert result.state == DEGRADED
    links = {reason.code: reason.link() for reason in result.reasons}
    assert links == {
        "stuck_events": "/events?view=stuck",
        "payment_event_failed": "/events?status=failed&type=checkout.session.completed",
        "review_critical": "/reconciliation",
        "job_failed": "/health?job=cleanup",
        "alert": "/alerts",
    }
    assert all(reason.state == DEGRADED for reason in result.reasons)


def test_command_exit_codes_and_json(db, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO),
           "MONITOR_DASHBOARD_URL": "https://monitor.example.org"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "jobs", "status", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)

    # The command runs on the wall clock: a quiet endpoint with nothing wrong, watched and
    # scheduled, is healthy.
    with db.begin() as conn:
        processes_alive(conn, at=datetime.now(timezone.utc))
    healthy = run()
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("Healthy")

    with db.begin() as conn:
        add_event(conn, created_at=datetime.now(timezone.utc) - timedelta(hours=1), status="processing")
    stuck = run("--json")
    assert stuck.returncode == 3, stuck.stderr
    body = json.loads(stuck.stdout)
    assert body["status"] == "degraded"
    [reason] = body["reasons"]
    assert reason["code"] == "stuck_events" and reason["link"] == "https://monitor.example.org/events?view=stuck"


def test_failed_checkout_events_of_several_types_are_one_reason(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW)
        for event_type in ("checkout.session.completed", "checkout.session.expired"):
            add_event(conn, created_at=NOW - timedelta(hours=2), status="failed", error="boom", event_type=event_type)
    [reason] = verdict(db).reasons
    assert reason.summary == "2 failed checkout events (2 types): payments may not be recorded"
    assert reason.link() == ("/events?status=failed&type=checkout.session.completed"
                             "&type=checkout.session.expired")


def test_no_watch_and_no_schedule_ever_is_degraded_with_its_own_reasons(db):
    with db.begin() as conn:
        steady_traffic(conn, until=NOW)
    result = verdict(db, alive=False)
    assert result.state == DEGRADED
    by_code = {reason.code: reason for reason in result.reasons}
    assert set(by_code) == {"watch_stopped", "schedule_stopped"}
    assert by_code["watch_stopped"].summary.startswith("Alerting is off")
    assert "never ran on this database" in by_code["watch_stopped"].summary
    assert by_code["watch_stopped"].link() == "/alerts"
    assert "retries and sweeps have stopped" in by_code["schedule_stopped"].summary
    assert by_code["schedule_stopped"].link() == "/health"


def test_a_watcher_that_stopped_a_few_intervals_ago_is_told_within_minutes(db):
    settings = get_settings()
    with db.begin() as conn:
        steady_traffic(conn, until=NOW)
        processes_alive(conn, at=NOW - timedelta(minutes=10))
    # Both alive two minutes on, both gone four minutes on (schedule beats every minute,
    # watch evaluates every MONITOR_ALERT_INTERVAL_S; three missed, at least three minutes).
    assert status(db, now=NOW - timedelta(minutes=8), settings=settings).healthy
    late = status(db, now=NOW - timedelta(minutes=6), settings=settings)
    assert {r.code for r in late.reasons} == {"watch_stopped", "schedule_stopped"}
    assert "last seen 2026-11-20 11:50 UTC" in late.reasons[0].summary


def test_an_evaluation_is_a_watch_heartbeat(db):
    from jobs.alerting import lifecycle

    with db.begin() as conn:
        steady_traffic(conn, until=NOW)
        processes_alive(conn, at=NOW - timedelta(hours=1))
    assert "watch_stopped" in {r.code for r in status(db, now=NOW, settings=get_settings()).reasons}
    lifecycle.evaluate(db, now=NOW - timedelta(seconds=5), settings=get_settings(), channels=[])
    assert [r.code for r in status(db, now=NOW, settings=get_settings()).reasons] == ["schedule_stopped"]
