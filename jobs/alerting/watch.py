"""``python -m jobs watch``: evaluate the alert rules and send notifications.

Continuously: every MONITOR_ALERT_INTERVAL_S seconds, and at once when the database
announces a failure-like change (``LISTEN monitor_alerts``; the triggers of
``migrations/functions/alerts.sql`` ``NOTIFY`` on an event becoming failed, a new review
item, a failed job run), so a failed payment event reaches people within a second or two,
not at the next tick. After a lost connection (database restart) it reconnects with backoff
and evaluates at once.

``--once`` evaluates and delivers one time (for cron or ``schedule``) and exits 3 while any
alert fires. Several watch processes may run: evaluations take turns under an advisory lock
and each notification is claimed before it is sent (``jobs.alerting.notify``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.errors import EXIT_NEEDS_PERSON, EXIT_OK
from core.settings import Settings, get_settings
from jobs.alerting import channels as channel_module
from jobs.alerting import lifecycle, pagerduty
from jobs.alerting import notify as delivery
from jobs.alerting.channels import Channel
from jobs.runtime import error_line, recorded_run

HELP = "evaluate the alert rules and send notifications: continuously, or once (exit 3 while an alert fires)"
JOB = "watch"
MAX_RECONNECT_DELAY_S = 10.0

log = logging.getLogger("jobs.alerting.watch")


@dataclass
class WatchReport:
    evaluation: lifecycle.Evaluation
    delivery: delivery.DeliveryReport

    @property
    def firing(self) -> int:
        return self.evaluation.firing

    def as_dict(self) -> dict[str, Any]:
        return {**self.evaluation.as_dict(), "delivery": self.delivery.as_dict()}


def run_once(engine: Engine, *, now: datetime, settings: Settings, channels: Mapping[str, Channel],
             host: str | None = None) -> WatchReport:
    """Evaluate every rule at ``now``, then send what is due."""
    evaluation = lifecycle.evaluate(engine, now=now, settings=settings, channels=list(channels))
    sent = delivery.deliver(engine, now=now, channels=channels, dashboard_url=settings.MONITOR_DASHBOARD_URL,
                            host=host)
    return WatchReport(evaluation, sent)


def run(engine: Engine, *, now: datetime, settings: Settings, channels: Mapping[str, Channel],
        trigger: str = "cli") -> WatchReport:
    """One recorded pass (``--once``, ``schedule``): a job_runs row, no exclusive lock (watchers may overlap)."""
    with recorded_run(engine, JOB, now=now, trigger=trigger, lock=False) as job:
        report = run_once(engine, now=now, settings=settings, channels=channels)
        job.summary = {"firing": report.firing, "fired": len(report.evaluation.fired),
                       "resolved": len(report.evaluation.resolved), "sent": report.delivery.sent,
                       "failed": report.delivery.failed, "errors": report.evaluation.errors}
        if report.firing:
            job.status = "needs_review"
    return report


def _listen(engine: Engine):
    """A dedicated autocommit psycopg connection subscribed to the alert triggers' channel."""
    raw = engine.raw_connection()
    conn: psycopg.Connection = raw.driver_connection
    raw.detach()  # ours for good, never handed back to the pool
    conn.autocommit = True
    conn.execute(lifecycle.SQL["listen"].sql)
    return conn


def watch(engine: Engine, *, settings: Settings, channels: Mapping[str, Channel],
          stop: threading.Event, on_report: Callable[[WatchReport, str], None] = lambda report, why: None,
          clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), host: str | None = None) -> None:
    """Evaluate on every notification and every interval until ``stop`` is set."""
    interval = float(settings.MONITOR_ALERT_INTERVAL_S)
    host = host or f"{socket.gethostname()}:{id(stop):x}"
    listener = None
    reconnect_delay = 0.5
    next_tick = 0.0  # evaluate at once on start
    why = "start"
    announced = False
    while not stop.is_set():
        try:
            if listener is None:
                listener = _listen(engine)
                if reconnect_delay > 0.5:
                    log.info("reconnected to the database; evaluating now")
                    why, next_tick = "reconnected", 0.0
                reconnect_delay = 0.5
            if time.monotonic() < next_tick:
                # Wake on the first notification (or after a second, to notice ``stop``).
                wait = min(next_tick - time.monotonic(), 1.0)
                if not any(True for _ in listener.notifies(timeout=max(wait, 0.0), stop_after=1)):
                    continue
                for _ in listener.notifies(timeout=0.0):  # the rest of a burst: one evaluation covers it
                    pass
                why = "notification"
            else:
                next_tick = time.monotonic() + interval
            report = run_once(engine, now=clock(), settings=settings, channels=channels, host=host)
            on_report(report, why)
            why = "interval"
            if not announced:  # from here on a failure is told at once (what a supervisor may wait for)
                log.info("evaluated the rules once; listening for database notifications")
                announced = True
        except (psycopg.OperationalError, sa.exc.OperationalError, sa.exc.InterfaceError,
                sa.exc.PendingRollbackError) as exc:
            log.warning("database unreachable (%s); retrying in %.1f s", error_line(exc), reconnect_delay)
            if listener is not None:
                try:
                    listener.close()
                except Exception:
                    pass
                listener = None
            engine.dispose()
            stop.wait(reconnect_delay)
            reconnect_delay = min(MAX_RECONNECT_DELAY_S, reconnect_delay * 2)
        except Exception as exc:  # anything else: say so and carry on at the next tick
            log.error("evaluation failed: %s", error_line(exc))
            next_tick = time.monotonic() + interval
            stop.wait(min(interval, 5.0))
    if listener is not None:
        listener.close()


# --- command line -----------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="evaluate and deliver once, then exit (3 while any alert fires)")


def _describe(report: WatchReport) -> list[str]:
    lines = [f"fired: [{a['severity']}] {a['rule']}: {a['summary']}" for a in report.evaluation.fired]
    lines += [f"resolved: {a['rule']}: {a['summary']}" for a in report.evaluation.resolved]
    lines += [f"rule {rule} could not be evaluated: {why}" for rule, why in report.evaluation.errors.items()]
    lines += [f"sent {d.kind} of alert {d.alert_id} to {d.channel}" if d.ok
              else f"could not send {d.kind} of alert {d.alert_id} to {d.channel} ({d.attempts} attempts): {d.error}"
              for d in report.delivery.deliveries]
    return lines


def main(args: argparse.Namespace, ctx) -> int:
    settings = ctx.settings
    channels = settings_channels(settings)
    engine = ctx.jobs_engine()  # no database: that one line, without the warning below
    if not channels:
        ctx.warn("no alert channel is configured (MONITOR_ALERT_WEBHOOK_URL, MONITOR_ALERT_SLACK_WEBHOOK_URL, "
                 "MONITOR_ALERT_EMAIL_TO with MONITOR_SMTP_URL, MONITOR_ALERT_PAGERDUTY_ROUTING_KEY): alerts are "
                 "recorded and shown on the dashboard only")
    if args.once:
        report = run(engine, now=ctx.now(), settings=settings, channels=channels, trigger=ctx.trigger)
        if args.json:
            ctx.print_json(report.as_dict())
        else:
            for line in _describe(report):
                ctx.say(line)
            ctx.say(f"{report.firing} alert(s) firing")
        return EXIT_NEEDS_PERSON if report.firing else EXIT_OK

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemd and Kubernetes stop with SIGTERM

    def on_report(report: WatchReport, why: str) -> None:
        if args.json:
            if report.evaluation.fired or report.evaluation.resolved or report.delivery.deliveries:
                print(json.dumps({"trigger": why, **report.as_dict()}, default=str), flush=True)
            return
        for line in _describe(report):
            log.info(line)

    log.info("watching: every %ss and on database notifications; channels: %s",
             settings.MONITOR_ALERT_INTERVAL_S, ", ".join(channels) or "none")
    # It rides database restarts out (it reconnects), so a lost session does not end it.
    with recorded_run(engine, JOB, now=ctx.now(), trigger=ctx.trigger, lock=False, survives_restart=True):
        try:
            watch(engine, settings=settings, channels=channels, stop=stop, on_report=on_report)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def settings_channels(settings: Settings | None = None) -> dict[str, Channel]:
    """The configured channels: the generic ones and PagerDuty (also for ``schedule``)."""
    settings = settings or get_settings()
    return {**channel_module.from_settings(settings), **pagerduty.from_settings(settings)}
