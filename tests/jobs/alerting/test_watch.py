"""``python -m jobs watch``: reacts to database notifications within seconds (not the interval),
two processes never send one notification twice, it survives a lost database connection,
and ``--once`` exits 3 while an alert fires."""

from __future__ import annotations

import json
import os
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
from devharness import ManagedProcess, line_ready, running_together, stop_together
from devharness.http_sink import HttpSink
from jobs.alerting import watch
from jobs.alerting.channels import WebhookChannel
from tests.support.factories import add_event


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


def watchers(count, extra_env):
    """``count`` ``python -m jobs watch --json`` processes (interval 300 s, so only notifications
    can explain a quick message), started side by side, each handed over once it listens and
    has done its first evaluation."""
    return running_together(
        ManagedProcess([sys.executable, "-m", "jobs", "watch", "--json"], name=f"watch-{n + 1}",
                       extra_env={"MONITOR_ALERT_INTERVAL_S": "300", **extra_env},
                       ready=line_ready("listening for database notifications"), stop_timeout_s=20)
        for n in range(count))


def test_two_watch_processes_notify_within_seconds_and_never_twice(db):
    with HttpSink() as sink, watchers(2, {"MONITOR_ALERT_WEBHOOK_URL": sink.url}) as processes:
        events = []
        for i in range(5):
            events.append(fail_event(db, f"checkout.session.kind_{i}"))
            # Generous for a loaded machine; the interval is 300 s, so anything arriving within
            # this bound came from the notification path (time to detect: bench/time_to_detect.py).
            received = sink.wait_for(i + 1, timeout=30)
            assert len(received) == i + 1, "no notification within 30 s (the interval is 300 s)"
        for event_id in events:
            complete_event(db, event_id)
        received = sink.wait_for(10, timeout=30)
        time.sleep(1.0)  # anything sent twice would arrive now
        codes = stop_together(processes)  # SIGTERM, as systemd stops it
        logs = [process.log() for process in processes]
    assert codes == [0, 0], logs
    bodies = [r.json() for r in sink.received]
    assert Counter((b["alert_id"], b["status"]) for b in bodies) == Counter(
        {(b["alert_id"], s): 1 for b in bodies for s in ("firing", "resolved")})
    assert len(bodies) == 10


def test_a_burst_of_100_failed_checkout_events_is_one_notification_per_channel(db):
    with HttpSink() as webhook, HttpSink() as slack, watchers(2, {
            "MONITOR_ALERT_WEBHOOK_URL": webhook.url, "MONITOR_ALERT_SLACK_WEBHOOK_URL": slack.url}):
        for _ in range(100):
            fail_event(db)
        webhook.wait_for(1)
        slack.wait_for(1)
        time.sleep(2.0)
    assert len(webhook.received) == 1 and len(slack.received) == 1
    assert webhook.received[0].json()["rule"] == "payment_event_failed"


def test_watch_reconnects_after_losing_the_database_and_evaluates_again(db, database_url):
    engine = create_jobs_engine(connect_args={"application_name": "watch-under-test"})
    halt = threading.Event()
    reports = []
    reported = threading.Condition()

    def on_report(report, why):
        with reported:
            reports.append(why)
            reported.notify_all()

    with HttpSink() as sink:
        settings = get_settings(MONITOR_ALERT_INTERVAL_S=300)
        thread = threading.Thread(target=watch.watch, kwargs=dict(
            engine=engine, settings=settings, channels={"webhook": WebhookChannel(sink.url)}, stop=halt,
            on_report=on_report))
        thread.start()
        try:
            with reported:  # the first evaluation comes after the LISTEN
                assert reported.wait_for(lambda: reports, timeout=20), "watch never evaluated"
            with db.connect() as conn:  # what a database restart does to the watcher's sessions
                killed = conn.execute(sa.text("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                                 WHERE application_name = 'watch-under-test'""")).scalar()
            assert killed >= 1
            with reported:
                assert reported.wait_for(lambda: "reconnected" in reports, timeout=20), reports
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
    from jobs.schedule import runner as schedule
    from jobs.schedule import timetable

    with HttpSink() as sink:
        monkeypatch.setenv("MONITOR_ALERT_WEBHOOK_URL", sink.url)
        monkeypatch.setenv("MONITOR_SCHEDULE", "watch=* * * * *")
        [entry] = timetable.load_schedule()
        now = datetime.now(timezone.utc)
        with db.begin() as conn:
            add_event(conn, created_at=now, status="failed")
        outcome = schedule.fire(db, "watch", fire_time=now.replace(second=0, microsecond=0), now=now)
        assert outcome.status == "ran" and entry.job == "watch"
        assert sink.wait_for(1)[0].json()["rule"] == "payment_event_failed"
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT trigger FROM job_runs WHERE job = 'watch'")).scalar() == "schedule"
