"""``python -m jobs metrics``: the monitor's state in Prometheus' exposition format at ``/metrics``.

Every metric is named ``webhook_monitor_*`` and computed at scrape time from the rollups and
a few small tables (``metrics.sql``), in one read-only transaction under
``MONITOR_METRICS_BUDGET_MS`` (``statement_timeout``): a scrape costs the same at 10k and
at 10M events, and a database too slow or away answers ``webhook_monitor_up 0`` at once
instead of holding Prometheus' scrape past its timeout. Only this collector is registered
(no process or platform metrics), so the endpoint publishes the monitor's names only.

The verdict is the one ``python -m jobs status`` prints (:mod:`jobs.health.verdict`); the watcher's
last evaluation is the ``watch`` heartbeat (:mod:`jobs.heartbeats`), which the shipped
Prometheus rules (``deploy/prometheus/``) watch from outside: the dead man's switch.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.sql import load_package
from jobs import heartbeats
from jobs.alerting.rules import RULES, SEVERITIES
from jobs.health import verdict
from jobs.runtime import error_line

HELP = "serve the monitor's state as Prometheus metrics at /metrics (every metric named webhook_monitor_*)"
SQL = load_package("jobs.health", "metrics.sql")
PREFIX = "webhook_monitor_"
# Processing-duration buckets, seconds (Prometheus' defaults, and a minute for slow handlers).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
VERDICT_VALUES = {verdict.HEALTHY: 0, verdict.DEGRADED: 1, verdict.DOWN: 2}
JOB_OUTCOMES = ("running", "completed", "needs_review", "failed")

log = logging.getLogger("jobs.health.metrics")


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def histogram(rows: list[dict]) -> tuple[list[tuple[str, float]], float, float]:
    """(cumulative buckets, count, sum in seconds) of the rollups' duration bins.

    A bin counts in the first bucket at or above its representative duration (the geometric
    middle of the bin, within 2.5 % of any duration in it)."""
    counts = [0.0] * len(DURATION_BUCKETS)
    total, seconds = 0.0, 0.0
    for row in rows:
        value, events = float(row["ms"]) / 1000, float(row["events"])
        total += events
        seconds += value * events
        for i, bound in enumerate(DURATION_BUCKETS):
            if value <= bound:
                counts[i] += events
                break
    buckets, running = [], 0.0
    for bound, count in zip(DURATION_BUCKETS, counts, strict=True):
        running += count
        buckets.append((repr(bound), running))
    buckets.append(("+Inf", total))
    return buckets, total, seconds


class MonitorCollector:
    """Reads the database on every ``collect()`` (one scrape); see the module docstring."""

    def __init__(self, engine: Engine, *, settings: Settings,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # computed per scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily(PREFIX + "up", "1 when the last scrape could read the database within its budget")
        try:
            metrics = self._read(self.clock())
        except Exception as exc:  # a slow or absent database: say so, publish nothing stale
            log.warning("scrape failed: %s", error_line(exc))
            metrics = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield from metrics
        yield up
        duration = GaugeMetricFamily(PREFIX + "scrape_duration_seconds", "Time the last scrape took to compute")
        duration.add_metric([], time.monotonic() - started)
        yield duration

    def _read(self, now: datetime) -> list[Metric]:
        with self.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            SQL.execute(conn, "scrape_budget", timeout_ms=int(self.settings.MONITOR_METRICS_BUDGET_MS))
            events = SQL.all(conn, "events_by_status", now=now)
            durations = SQL.all(conn, "duration_histogram", now=now)
            failed = SQL.one(conn, "failed_events") or {}
            missed = SQL.all(conn, "missed_events")
            firing = SQL.all(conn, "firing_alerts")
            jobs = SQL.all(conn, "jobs")
            review = SQL.all(conn, "review_items")
            beats = heartbeats.read(conn)
            current = verdict.status(conn, now=now, settings=self.settings)
            endpoints = SQL.all(conn, "stripe_endpoints")
            last_event = SQL.scalar(conn, "last_event")
        out: list[Metric] = []

        family = GaugeMetricFamily(PREFIX + "events", "Webhook events recorded now (archived ones excepted), "
                                   "by processing status, event type and error category",
                                   labels=["status", "event_type", "category"])
        for row in events:
            family.add_metric([row["status"], row["event_type"], row["category"] or ""], int(row["events"]))
        out.append(family)

        family = GaugeMetricFamily(PREFIX + "last_event_timestamp_seconds",
                                   "When the newest recorded webhook event arrived (0: none yet)")
        family.add_metric([], _epoch(last_event))
        out.append(family)

        buckets, count, seconds = histogram(durations)
        out.append(HistogramMetricFamily(PREFIX + "processing_duration_seconds",
                                         "Processing time of every finished event (from the rollups' bins)",
                                         buckets=buckets, sum_value=seconds))

        family = GaugeMetricFamily(PREFIX + "failed_events", "Failed events now: an automatic retry is planned "
                                   "(awaiting_retry) or none is (needs_person)", labels=["state"])
        family.add_metric(["awaiting_retry"], int(failed.get("awaiting_retry") or 0))
        family.add_metric(["needs_person"], int(failed.get("needs_person") or 0))
        out.append(family)

        family = GaugeMetricFamily(PREFIX + "missed_events", "Events Stripe sent that the app never completed "
                                   "(found by the sweep), by currency ('' without an amount)", labels=["currency"])
        risk = GaugeMetricFamily(PREFIX + "money_at_risk_minor_units", "Amount of those missed events, in the "
                                 "currency's minor units (cents)", labels=["currency"])
        if not missed:
            family.add_metric([""], 0)
        for row in missed:
            family.add_metric([row["currency"]], int(row["events"]))
            if row["currency"]:
                risk.add_metric([row["currency"]], int(row["amount"]))
        out += [family, risk]

        family = GaugeMetricFamily(PREFIX + "alerts_firing", "Alerts firing now, by rule and severity",
                                   labels=["rule", "severity"])
        counts = {(row["rule"], row["severity"]): int(row["alerts"]) for row in firing}
        for rule in RULES:
            for severity in SEVERITIES:
                family.add_metric([rule, severity], counts.get((rule, severity), 0))
        out.append(family)

        success = GaugeMetricFamily(PREFIX + "job_last_success_timestamp_seconds",
                                    "When each job last completed (0: never)", labels=["job"])
        outcome = GaugeMetricFamily(PREFIX + "job_last_outcome", "Each job's last run: 1 for its status",
                                    labels=["job", "outcome"])
        for row in jobs:
            success.add_metric([row["job"]], _epoch(row["last_success_at"]))
            for status in JOB_OUTCOMES:
                outcome.add_metric([row["job"], status], 1 if row["last_status"] == status else 0)
        out += [success, outcome]

        family = GaugeMetricFamily(PREFIX + "review_items_open", "Reconciliation items waiting for a person, by kind",
                                   labels=["kind"])
        for row in review:
            family.add_metric([row["kind"]], int(row["items"]))
        out.append(family)

        family = GaugeMetricFamily(PREFIX + "verdict", "The status verdict: 0 healthy, 1 degraded, 2 down")
        family.add_metric([], VERDICT_VALUES[current.state])
        out.append(family)
        family = GaugeMetricFamily(PREFIX + "verdict_reasons", "The verdict's reasons now, by code", labels=["code"])
        for code in sorted({reason.code for reason in current.reasons}):
            family.add_metric([code], sum(reason.code == code for reason in current.reasons))
        out.append(family)

        by_process = {row["process"]: row["beat_at"] for row in beats}
        family = GaugeMetricFamily(PREFIX + "watch_last_evaluation_timestamp_seconds",
                                   "When `watch` last evaluated the alert rules (0: never)")
        family.add_metric([], _epoch(by_process.get("watch")))
        out.append(family)
        family = GaugeMetricFamily(PREFIX + "heartbeat_timestamp_seconds",
                                   "When each long-running process last showed it is alive (0: never)",
                                   labels=["process"])
        for process in heartbeats.PROCESSES:
            family.add_metric([process], _epoch(by_process.get(process)))
        out.append(family)

        enabled = GaugeMetricFamily(PREFIX + "stripe_endpoint_enabled", "Stripe's webhook endpoints as the "
                                    "sweep last listed them: 1 enabled, 0 disabled", labels=["endpoint", "url"])
        misconfigured = GaugeMetricFamily(PREFIX + "stripe_endpoint_misconfigured", "1 when the endpoint misses "
                                          "an event type the app needs or runs another API version",
                                          labels=["endpoint", "url"])
        for row in endpoints:
            if not row["watched"]:
                continue
            enabled.add_metric([row["stripe_endpoint_id"], row["url"]], 1 if row["status"] == "enabled" else 0)
            misconfigured.add_metric([row["stripe_endpoint_id"], row["url"]], 1 if row["misconfigured"] else 0)
        out += [enabled, misconfigured]
        return out


def registry(engine: Engine, *, settings: Settings, clock: Callable[[], datetime] | None = None) -> CollectorRegistry:
    """A registry holding only the monitor's collector."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MonitorCollector(engine, settings=settings, **({"clock": clock} if clock else {})))
    return reg


# --- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: loopback only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=9464,
                        help="port to listen on (default 9464; 0 picks a free one and prints it)")


def main(args: argparse.Namespace, ctx) -> int:
    from core.errors import ConfigError

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: a port is 0 to 65535")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = ctx.jobs_engine()
    try:
        server, thread = start_http_server(args.port, addr=args.host, registry=registry(engine, settings=ctx.settings))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    host, port = server.server_address[:2]
    ctx.say(f"serving metrics at http://{host}:{port}/metrics")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemd and Kubernetes stop with SIGTERM
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0
