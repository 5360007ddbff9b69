"""Replay and alert-webhook URLs: run records and alerts show the host only, never the user,
password or token in MONITOR_REPLAY_URL; replay goes over plain http:// only to this machine;
an answer is read up to a limit, so an endpoint that never stops answering cannot hold a run."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from core.errors import EXIT_USAGE, JobFailed
from core.settings import get_settings
from devharness.http_sink import HttpSink
from jobs.alerting import lifecycle
from jobs.alerting.channels import WebhookChannel
from jobs.replay import retry
from jobs.replay.redeliver import Redeliverer
from tests.jobs.replay.test_retry import cli, failed_event, make_due
from tests.tracking.test_receiver import SECRET


def test_a_failed_replay_records_and_alerts_the_host_only(db, down_port):
    url = f"http://ops:pa55word@127.0.0.1:{down_port}/stripe/webhook?token=tok3n"
    event_id = failed_event(db, ConnectionResetError("peer reset"))
    now = datetime.now(timezone.utc)
    with pytest.raises(JobFailed) as raised:
        retry.run(db, now=now, event_ids=[event_id], redeliverer=Redeliverer(url, SECRET, timeout_s=5))
    with db.connect() as conn:
        error = conn.execute(sa.text("SELECT error FROM job_runs WHERE job = 'retry'")).scalar_one()
    evaluation = lifecycle.evaluate(db, now=now, settings=get_settings(), channels=["webhook"])
    [alert] = [a for a in evaluation.fired if a["fingerprint"] == "job_failed:retry"]
    for text in (str(raised.value), error, alert["summary"]):
        assert "MONITOR_REPLAY_URL (127.0.0.1)" in text
        assert "pa55word" not in text and "tok3n" not in text and "ops" not in text and "/stripe" not in text


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://127.9.9.9/hook", "http://[::1]:8000/hook",
                                 "http://localhost:8000/hook", "https://app.example.com/stripe/webhook"])
def test_replay_goes_to_https_or_to_this_machine(url):
    with Redeliverer(url, SECRET) as redeliverer:
        assert redeliverer.host in url


def test_replay_over_plain_http_to_another_machine_is_refused_in_one_line(db, monkeypatch):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("MONITOR_REPLAY_URL", "http://hook:s3cret@app.example.com/stripe/webhook")
    failed_event(db, ConnectionResetError("peer reset"))
    make_due(db)
    result = cli()
    assert result.returncode == EXIT_USAGE, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "must be https://" in line and "app.example.com" in line and "s3cret" not in line
    assert os.environ["MONITOR_REPLAY_URL"].startswith("http://")


def finishes_within(seconds: float, work) -> object:
    """Run ``work`` in a thread; its result, or fail when it is still running after ``seconds``."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = work()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading the answer after {time.monotonic() - started:.0f} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_an_answer_that_never_ends_is_read_up_to_a_limit():
    with HttpSink(reply=b'{"status": "completed", "padding": "' + b"x" * 65536, endless=True) as endless:
        with Redeliverer(endless.url, SECRET, timeout_s=5) as redeliverer:
            result = finishes_within(10, lambda: redeliverer.deliver(b'{"id": "evt_1", "type": "x"}'))
        assert result.status == 200 and len(result.answer) <= 500
        channel = WebhookChannel(endless.url, timeout=5)
        finishes_within(10, lambda: channel.send({"alert_id": 1, "summary": "s"}))
        endless.status = 500
        with pytest.raises(Exception, match=r"answered 500: \{\"status\""):
            finishes_within(10, lambda: channel.send({"alert_id": 1, "summary": "s"}))
