"""``python -m jobs watch``: reacts to database notifications within seconds (not the interval),
two processes never send one notification twice, it survives a lost database connection,
and ``--once`` exits 3 while an alert fires."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from core.db import create_jobs_engine
from core.settings import get_settings
from jobs import watch
from jobs.alerting.channels import WebhookChannel
from devharness.http_sink import HttpSink
from tests.factories import add_event


def fail_event(engine, event_type="checkout.session.completed") -> str:
    """Record a failed delivery the way a handler does (tracking functions), committed."""
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT * FROM webhook_event_begin(:id, :type, CAST('{}' AS jsonb))"),
                     {"id": event_id, "type": event_type})
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT webhook_event_fail(:id, 'registration not found')"), {"id": event_id})
    return event_id


def complete_event(engine, event_id):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed' WHERE stripe_event_id = :id"),
                     {"id": event_id})


def start_watchers(count, env_extra):
    env = {**os.environ, "MONITOR_ALERT_INTERVAL_S": "300", **env_extra}
    return [subprocess.Popen([sys.executable, "-m", "jobs", "watch", "--json"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]


def wait_listening(engine, count, timeout=20.0):
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            listening = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN monitor_alerts%'")).scalar()
            conn.commit()  # pg_stat_activity is a snapshot per transaction
            if listening >= count:
                return
            time.sleep(0.1)
    raise AssertionError("watch processes did not start listening")


def stop(processes):
    for process in processes:
        process.send_signal(signal.SIGTERM)
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=20)
        outputs.append((process.returncode, out, err))
    return outputs


def test_two_watch_processes_notify_within_seconds_and_never_twice(db):
    with HttpSink() as sink:
        watchers = start_watchers(2, {"MONITOR_ALERT_WEBHOOK_URL": sink.url})
        try:
            wait_listening(db, 2)
            time.sleep(0.5)  # both have done their first evaluation
            events, delays = [], []
            for i in range(5):
                committed = time.time()
                events.append(fail_event(db, f"checkout.session.kind_{i}"))
                received = sink.wait_for(i + 1, timeout=10)
                assert len(received) == i + 1, "no notification within 10 s (the interval is 300 s)"
                delays.append(received[-1].at - committed)
            for event_id in events:
                complete_event(db, event_id)
            received = sink.wait_for(10, timeout=10)
            time.sleep(1.0)  # anything sent twice would arrive now
        finally:
            outcomes = stop(watchers)
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    bodies = [r.json() for r in sink.received]
    assert Counter((b["alert_id"], b["status"]) for b in bodies) == Counter(
        {(b["alert_id"], s): 1 for b in bodies for s in ("firing", "resolved")})
    assert len(bodies) == 10
    assert max(delays) < 5, delays


def test_a_burst_of_100_failed_checkout_events_is_one_notification_per_channel(db):
    with HttpSink() as webhook, HttpSink() as slack:
        watchers = start_watchers(2, {"MONITOR_ALERT_WEBHOOK_URL": webhook.url,
                                      "MONITOR_ALERT_SLACK_WEBHOOK_URL": slack.url})
        try:
            wait_listening(db, 2)
            for _ in range(100):
                fail_event(db)
            webhook.wait_for(1)
            slack.wait_for(1)
            time.sleep(2.0)
        finally:
            stop(watchers)
    assert len(webhook.received) == 1 and len(slack.received) == 1
    assert webhook.received[0].json()["rule"] == "payment_event_failed"


def test_watch_reconnects_after_losing_the_database_and_evaluates_again(db, database_url):
    engine = create_jobs_engine(connect_args={"application_name": "watch-under-test"})
    halt = threading.Event()
    reports = []
    with HttpSink() as sink:
        settings = get_settings(MONITOR_ALERT_INTERVAL_S=300)
        thread = threading.Thread(target=watch.watch, kwargs=dict(
            engine=engine, settings=settings, channels={"webhook": WebhookChannel(sink.url)}, stop=halt,
            on_report=lambda report, why: reports.append(why)))
        thread.start()
        try:
            wait_listening(db, 1)
            with db.connect() as conn:  # what a database restart does to the watcher's sessions
                killed = conn.execute(sa.text("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                                 WHERE application_name = 'watch-under-test'""")).scalar()
            assert killed >= 1
            deadline = time.monotonic() + 20
            while "reconnected" not in reports and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "reconnected" in reports, reports
            fail_event(db)  # after the reconnection: told through the new LISTEN, at once
            assert len(sink.wait_for(1, timeout=10)) == 1
        finally:
            halt.set()
            thread.join(timeout=20)
            engine.dispose()
    assert "reconnected" in reports and "notification" in reports


def test_once_exits_3_while_an_alert_fires_and_0_when_clear(db):
    with HttpSink() as sink:
        env = {**os.environ, "MONITOR_ALERT_WEBHOOK_URL": sink.url}
        with db.begin() as conn:
            event_id = add_event(conn, created_at=datetime.now(timezone.utc) - timedelta(seconds=1), status="failed")
        result = subprocess.run([sys.executable, "-m", "jobs", "watch", "--once", "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 3, result.stderr
        report = json.loads(result.stdout)
        assert report["firing"] == 1 and report["delivery"]["sent"] == 1
        assert [a["rule"] for a in report["fired"]] == ["payment_event_failed"]
        complete_event(db, event_id)
        result = subprocess.run([sys.executable, "-m", "jobs", "watch", "--once"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "resolved: payment_event_failed" in result.stdout
        assert [r.json()["status"] for r in sink.wait_for(2)] == ["firing", "resolved"]
    with db.connect() as conn:
        runs = conn.execute(sa.text("SELECT status FROM job_runs WHERE job = 'watch' ORDER BY id")).scalars().all()
    assert runs == ["needs_review", "completed"]


def test_once_without_channels_warns_and_still_records_the_alert(db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_ALERT_")}
    with db.begin() as conn:
        add_event(conn, created_at=datetime.now(timezone.utc), status="failed")
    result = subprocess.run([sys.executable, "-m", "jobs", "watch", "--once"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "no alert channel is configured" in result.stderr
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alerts WHERE status = 'firing'")).scalar() == 1


def test_schedule_can_run_watch(db, monkeypatch):
    from jobs import schedule

    with HttpSink() as sink:
        monkeypatch.setenv("MONITOR_ALERT_WEBHOOK_URL", sink.url)
        monkeypatch.setenv("MONITOR_SCHEDULE", "watch=* * * * *")
        [entry] = schedule.load_schedule()
        now = datetime.now(timezone.utc)
        with db.begin() as conn:
            add_event(conn, created_at=now, status="failed")
        outcome = schedule.fire(db, "watch", fire_time=now.replace(second=0, microsecond=0), now=now)
        assert outcome.status == "ran" and entry.job == "watch"
        assert sink.wait_for(1)[0].json()["rule"] == "payment_event_failed"
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT trigger FROM job_runs WHERE job = 'watch'")).scalar() == "schedule"
