"""``python -m jobs metrics``: a real exporter process scraped over HTTP, its numbers read
back with Prometheus' own text parser."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from core.settings import get_settings
from devharness import ManagedProcess, line_ready
from jobs.alerting import lifecycle
from jobs.health import metrics
from tests.conftest import REPO
from tests.support.factories import add_event, processes_alive


def exporter(extra_env=None) -> ManagedProcess:
    return ManagedProcess([sys.executable, "-m", "jobs", "metrics", "--port", "0"], name="metrics", cwd=REPO,
                          extra_env=extra_env or {}, stop_timeout_s=20,
                          ready=line_ready(r"serving metrics at (http://\S+/metrics)"))


def scrape(url: str) -> dict[str, list]:
    """Samples by metric family name."""
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family.samples for family in text_string_to_metric_families(response.text)}
    return families


def value(samples, **labels) -> float:
    [match] = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return match


def test_a_scrape_publishes_the_monitors_state_under_its_own_names(db):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for i in range(6):
            add_event(conn, created_at=now - timedelta(hours=2, minutes=i), status="completed", duration_ms=40,
                      event_type="customer.created")
        add_event(conn, created_at=now - timedelta(hours=1), status="completed", duration_ms=3000,
                  event_type="invoice.paid")
        add_event(conn, created_at=now - timedelta(minutes=5), status="failed", duration_ms=10, error="boom",
                  event_type="checkout.session.completed", error_category="database")
        conn.execute(sa.text(
            "INSERT INTO job_runs (job, trigger, status, started_at, finished_at)"
            " VALUES ('cleanup', 'cli', 'completed', :t, :t), ('cleanup', 'cli', 'failed', :u, :u)"),
            {"t": now - timedelta(days=1), "u": now - timedelta(hours=1)})
    lifecycle.evaluate(db, now=now, settings=get_settings(), channels=[])  # fires payment_event_failed

    with exporter() as process:
        url = process.ready_value.group(1)
        assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        families = scrape(url)

    assert all(name.startswith("webhook_monitor_") for name in families)
    assert value(families["webhook_monitor_up"]) == 1
    events = families["webhook_monitor_events"]
    assert value(events, status="completed", event_type="customer.created") == 6
    assert value(events, status="failed", event_type="checkout.session.completed", category="database") == 1
    histogram = {s.labels.get("le"): s.value for s in families["webhook_monitor_processing_duration_seconds"]
                 if s.name.endswith("_bucket")}
    assert histogram["0.05"] == 7 and histogram["2.5"] == 7 and histogram["5.0"] == 8 and histogram["+Inf"] == 8
    failed = families["webhook_monitor_failed_events"]
    assert value(failed, state="needs_person") + value(failed, state="awaiting_retry") == 1
    firing = families["webhook_monitor_alerts_firing"]
    assert value(firing, rule="payment_event_failed", severity="critical") == 1
    assert value(firing, rule="silence", severity="critical") == 0
    assert value(families["webhook_monitor_job_last_outcome"], job="cleanup", outcome="failed") == 1
    assert value(families["webhook_monitor_job_last_success_timestamp_seconds"], job="cleanup") == pytest.approx(
        (now - timedelta(days=1)).timestamp(), abs=1)
    assert value(families["webhook_monitor_verdict"]) == 1  # degraded
    reasons = {s.labels["code"] for s in families["webhook_monitor_verdict_reasons"]}
    assert {"payment_event_failed", "schedule_stopped"} <= reasons and "watch_stopped" not in reasons
    assert value(families["webhook_monitor_watch_last_evaluation_timestamp_seconds"]) == pytest.approx(
        now.timestamp(), abs=1)
    assert value(families["webhook_monitor_heartbeat_timestamp_seconds"], process="schedule") == 0  # never


def test_a_scrape_over_its_budget_says_up_0_at_once(db):
    with db.begin() as conn:
        processes_alive(conn, at=datetime.now(timezone.utc))
        # The scrape's first statement waits for this lock past the 100 ms budget.
        conn.execute(sa.text("LOCK TABLE monitor_heartbeats IN ACCESS EXCLUSIVE MODE"))
        with exporter({"MONITOR_METRICS_BUDGET_MS": "100"}) as process:
            started = datetime.now(timezone.utc)
            families = scrape(process.ready_value.group(1))
            took = datetime.now(timezone.utc) - started
    assert value(families["webhook_monitor_up"]) == 0
    assert "webhook_monitor_events" not in families
    assert took < timedelta(seconds=5)


def test_histogram_buckets_are_cumulative_from_the_rollup_bins():
    buckets, count, seconds = metrics.histogram([{"ms": 4.0, "events": 2}, {"ms": 2000.0, "events": 1},
                                                 {"ms": 120_000.0, "events": 1}])
    as_dict = dict(buckets)
    assert as_dict["0.005"] == 2 and as_dict["1.0"] == 2 and as_dict["2.5"] == 3 and as_dict["60.0"] == 3
    assert as_dict["+Inf"] == count == 4
    assert seconds == pytest.approx(0.008 + 2 + 120)


def test_a_port_taken_is_one_line(db):
    with exporter() as first:
        port = first.ready_value.group(1).split(":")[2].split("/")[0]
        second = ManagedProcess([sys.executable, "-m", "jobs", "metrics", "--port", port], name="metrics-2",
                                cwd=REPO, stop_timeout_s=20)
        with second:
            assert second.wait(60) == 2
            log = second.log()
        assert "cannot listen on 127.0.0.1:" + port in log and "Traceback" not in log
