"""``python -m jobs retry`` end to end against the reference receiver under uvicorn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from core.errors import EXIT_FAILED, EXIT_NEEDS_PERSON, EXIT_OK, JobFailed
from jobs.replay import retry
from jobs.replay.redeliver import Redeliverer
from local_stripe.objects import checkout_session_event
from tests.conftest import REPO
from tests.support.factories import add_registration
from tests.tracking.test_receiver import SECRET, ServerThread, event_row, registration_row
from tracking.receiver import WEBHOOK_PATH, Receiver
from tracking.tracker import EventTracker


class CountingReceiver(Receiver):
    """The reference receiver, counting the deliveries it got per event (and slowed a little,
    so two retry processes really overlap)."""

    def __init__(self, *args, delay_s: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s
        self.seen: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def deliver(self, body, signature, source="delivery"):
        try:
            event_id = json.loads(body).get("id")
        except ValueError:
            event_id = None
        with self._count_lock:
            self.seen[event_id] += 1
            self.sources[source] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().deliver(body, signature, source)


@pytest.fixture(scope="module")
def app(engine):
    return CountingReceiver(engine=engine, webhook_secret=SECRET)


@pytest.fixture(scope="module")
def server(app):
    with ServerThread(app) as running:
        yield running


@pytest.fixture
def receiver(server, app, db, monkeypatch):
    app.seen.clear()
    app.sources.clear()
    app.delay_s = 0.0
    monkeypatch.setenv("MONITOR_REPLAY_URL", f"http://127.0.0.1:{server.port}{WEBHOOK_PATH}")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", f"{SECRET},whsec_older")
    return app


def now() -> datetime:
    return datetime.now(timezone.utc)


def failed_event(engine, exc: BaseException, event_type: str = "payment_intent.created", **fields) -> str:
    """An event whose first attempt failed with ``exc`` (recorded by the real tracking functions)."""
    event = checkout_session_event(event_type, **fields)
    tracker = EventTracker(engine)
    claim = tracker.begin(event)
    assert tracker.fail(claim, exc)
    return event["id"]


def make_due(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_events SET next_retry_at = now() - interval '1 second' "
                             "WHERE next_retry_at IS NOT NULL"))


def events_table(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM webhook_events ORDER BY stripe_event_id")).mappings()]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", "retry", *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


def test_a_failed_event_is_redelivered_completed_and_applied_once(receiver, db):
    other = "7b4a7a0e-0000-4000-8000-000000000001"
    # A paid session whose registration the app had not written: a validation failure.
    event_id = failed_event(db, LookupError("no registration"), "checkout.session.completed", registration_id=other)
    assert event_row(db, event_id)["next_retry_at"] is None
    with db.begin() as conn:  # the app is fixed: the row exists now
        add_registration(conn, created_at=now(), registration_id=other)
    report = retry.run(db, now=now(), event_ids=[event_id])
    assert (report.planned, report.delivered, report.completed) == (1, 1, 1)
    row = event_row(db, event_id)
    assert (row["processing_status"], row["attempts"], row["retry_claimed_until"]) == ("completed", 2, None)
    assert registration_row(db, other)["processing_status"] == "completed"
    with db.connect() as conn:
        sources = conn.execute(sa.text("SELECT source, outcome FROM webhook_event_attempts "
                                       "WHERE stripe_event_id = :id ORDER BY attempt"), {"id": event_id}).all()
    assert [tuple(s) for s in sources] == [("delivery", "failed"), ("retry", "completed")]
    # Completed now: asking again re-delivers nothing.
    again = retry.run(db, now=now(), event_ids=[event_id])
    assert again.planned == 0 and again.skipped == {event_id: "completed, not failed"}
    assert receiver.seen[event_id] == 1


def test_due_retries_run_and_validation_failures_are_left_for_a_person(receiver, db):
    transient = [failed_event(db, ConnectionResetError("peer reset")) for _ in range(3)]
    permanent = failed_event(db, KeyError("payment_status"))
    not_yet = failed_event(db, TimeoutError("slow"))
    make_due(db)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_events SET next_retry_at = now() + interval '1 hour' "
                             "WHERE stripe_event_id = :id"), {"id": not_yet})
    result = cli("--json")
    assert result.returncode == EXIT_NEEDS_PERSON, result.stderr
    report = json.loads(result.stdout)
    assert (report["planned"], report["completed"], report["remaining_needs_person"]) == (3, 3, 1)
    assert report["needs_person_by_category"] == {"validation": 1}
    assert {event_row(db, e)["processing_status"] for e in transient} == {"completed"}
    assert event_row(db, permanent)["attempts"] == 1 and receiver.seen[permanent] == 0
    assert event_row(db, not_yet)["processing_status"] == "failed" and receiver.seen[not_yet] == 0
    assert receiver.sources == Counter({"retry": 3})


def test_with_nothing_left_for_a_person_the_run_exits_0(receiver, db):
    failed_event(db, ConnectionResetError("peer reset"))
    make_due(db)
    result = cli()
    assert result.returncode == EXIT_OK, result.stderr
    assert "re-delivered 1 of 1 due event(s)" in result.stdout


def test_a_dry_run_shows_the_plan_and_changes_nothing(receiver, db):
    for exc in (ConnectionResetError("reset"), ConnectionResetError("reset"), TimeoutError("slow")):
        failed_event(db, exc)
    failed_event(db, psycopg_like_deadlock())
    make_due(db)
    before = events_table(db)
    result = cli("--dry-run", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    report = json.loads(result.stdout)
    assert report["planned"] == 4 and report["by_category"] == {"network": 3, "database": 1}
    assert report["oldest_created_at"] is not None and report["delivered"] == 0
    assert events_table(db) == before and sum(receiver.seen.values()) == 0
    text = cli("--dry-run", "--category", "network")
    assert "would re-deliver 3 due event(s) (network 3)" in text.stdout


def psycopg_like_deadlock() -> BaseException:
    """A real deadlock error object (SQLSTATE 40P01) as psycopg raises it."""
    import psycopg

    return psycopg.errors.DeadlockDetected("deadlock detected")


def test_completed_and_processing_events_are_never_redelivered(receiver, db):
    tracker = EventTracker(db)
    completed = checkout_session_event("payment_intent.created")
    with tracker.track(completed) as attempt:
        attempt.outcome = "ignored"
    processing = checkout_session_event("payment_intent.created")
    tracker.begin(processing)
    report = retry.run(db, now=now(), event_ids=[completed["id"], processing["id"], "evt_missing"])
    assert report.planned == 0 and report.skipped == {
        completed["id"]: "completed, not failed", processing["id"]: "processing, not failed",
        "evt_missing": "no such event"}
    assert sum(receiver.seen.values()) == 0


def test_a_replay_url_that_is_down_fails_the_run_and_changes_nothing(receiver, db, monkeypatch, down_port):
    for _ in range(3):
        failed_event(db, ConnectionResetError("peer reset"))
    make_due(db)
    before = events_table(db)
    monkeypatch.setenv("MONITOR_REPLAY_URL", f"http://127.0.0.1:{down_port}/stripe/webhook")
    result = cli()
    assert result.returncode == EXIT_FAILED
    assert "MONITOR_REPLAY_URL" in result.stderr and "did not take the re-deliveries" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert events_table(db) == before


def test_a_secret_the_endpoint_does_not_know_fails_the_run(receiver, db):
    event_id = failed_event(db, ConnectionResetError("peer reset"))
    with pytest.raises(JobFailed, match="refused the signature"):
        retry.run(db, now=now(), event_ids=[event_id],
                  redeliverer=Redeliverer(os.environ["MONITOR_REPLAY_URL"], "whsec_wrong"))
    row = event_row(db, event_id)
    assert (row["processing_status"], row["attempts"], row["retry_claimed_until"]) == ("failed", 1, None)


def test_without_a_replay_url_nothing_due_is_fine_and_something_due_is_exit_2(receiver, db, monkeypatch):
    monkeypatch.delenv("MONITOR_REPLAY_URL")
    assert cli().returncode == EXIT_OK
    failed_event(db, ConnectionResetError("peer reset"))
    make_due(db)
    result = cli()
    assert result.returncode == 2 and "MONITOR_REPLAY_URL is not set" in result.stderr


def test_two_retry_processes_at_once_deliver_each_event_once(receiver, db):
    events = [failed_event(db, ConnectionResetError("peer reset")) for _ in range(120)]
    make_due(db)
    receiver.delay_s = 0.02  # so the two runs overlap for a couple of seconds
    processes = [subprocess.Popen([sys.executable, "-m", "jobs", "retry", "--json"], cwd=REPO,
                                  env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [EXIT_OK, EXIT_OK], [o[1] for o in outputs]
    delivered = [json.loads(out)["delivered"] for out, _err in outputs]
    assert sum(delivered) == 120
    assert {receiver.seen[e] for e in events} == {1}
    assert {event_row(db, e)["processing_status"] for e in events} == {"completed"}


def test_runs_are_recorded_in_job_runs(receiver, db):
    failed_event(db, KeyError("payment_status"))
    retry.run(db, now=now(), dry_run=True, trigger="cli")
    with db.connect() as conn:
        run = conn.execute(sa.text("SELECT job, status, trigger, summary FROM job_runs")).mappings().one()
    assert (run["job"], run["status"], run["trigger"]) == ("retry", "needs_review", "cli")
    assert run["summary"]["remaining_needs_person"] == 1


def test_the_default_schedule_retries_every_minute():
    from core.settings import DEFAULT_SCHEDULE, schedule_entries

    assert schedule_entries(DEFAULT_SCHEDULE)["retry"] == "* * * * *"


def test_an_event_a_dead_worker_left_processing_is_redelivered_and_a_live_ones_is_not(receiver, db):
    reg = "7b4a7a0e-0000-4000-8000-0000000000d1"
    with db.begin() as conn:
        add_registration(conn, created_at=now(), registration_id=reg)
    orphan = checkout_session_event("checkout.session.completed", registration_id=reg)
    worker = ("import json, os, sys\n"
              "from core.db import create_jobs_engine\n"
              "from tracking.tracker import EventTracker\n"
              "with EventTracker(create_jobs_engine()).track(json.loads(sys.argv[1])):\n"
              "    os._exit(9)  # killed mid-attempt\n")
    died = subprocess.run([sys.executable, "-c", worker, json.dumps(orphan)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert died.returncode == 9, died.stderr
    live_tracker = EventTracker(db)
    live = checkout_session_event("payment_intent.created")
    claim = live_tracker.begin(live, hold=True)  # a live worker, mid-attempt, holding its lock
    try:
        report = retry.run(db, now=now())
        assert (report.planned, report.delivered, report.completed) == (1, 1, 1)
        assert receiver.seen[orphan["id"]] == 1 and receiver.seen[live["id"]] == 0
        assert event_row(db, orphan["id"])["processing_status"] == "completed"
        assert registration_row(db, reg)["processing_status"] == "completed"
        assert event_row(db, live["id"])["processing_status"] == "processing"
    finally:
        with live_tracker.attempt(claim) as attempt:
            attempt.outcome = "ignored"
