"""``python -m jobs schedule``: run the jobs at the times in ``MONITOR_SCHEDULE``.

Built on APScheduler 3 (cron triggers, a blocking scheduler, one thread per running job).
Each fire runs the same job function as the command line, with trigger ``schedule``, so
it takes the job's advisory lock and is recorded in ``job_runs`` like any other run.
Several schedulers may run at once (one per machine): each fire time is claimed in
``scheduled_runs`` first, so exactly one of them runs it.

The time logic is :mod:`jobs.schedule.timetable` (plain functions of a given ``now``), which
``--show`` prints and the tests drive; nothing here reads the clock except the live loop.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from core.errors import ConfigError, JobBusy
from core.settings import Settings, get_settings, sweep_event_types
from core.sql import load_package
from jobs import heartbeats
from jobs.cleanup import command as cleanup
from jobs.health import report as health_report
from jobs.health import snapshot as health_snapshot
from jobs.reconcile import reconciler as reconcile
from jobs.replay import retry, sweep
from jobs.runtime import error_line
from jobs.schedule.timetable import JOB_NAMES, MISFIRE_GRACE, Entry, latest_fire_time, load_schedule, next_fire_times
from jobs.stripe_gateway import gateway_from_settings

HELP = ("run the jobs on the schedule in MONITOR_SCHEDULE (by default reconciliation and "
        "cleanup daily, a health snapshot hourly, due retries every minute, the health report "
        "on Monday mornings)")
SQL = load_package("jobs.schedule", "runner.sql")
TRIGGER = "schedule"
KEEP_CLAIMS = timedelta(days=30)

log = logging.getLogger("jobs.schedule.runner")


def _reconcile(engine: Engine, now: datetime):
    return reconcile.run(engine, now=now, gateway=gateway_from_settings(), trigger=TRIGGER)


def _cleanup(engine: Engine, now: datetime):
    return cleanup.run(engine, now=now, trigger=TRIGGER, **cleanup.stripe_from_settings(get_settings()))


def _health_snapshot(engine: Engine, now: datetime):
    return health_snapshot.run(engine, now=now, trigger=TRIGGER)


def _health_report(engine: Engine, now: datetime):
    return health_report.scheduled(engine, now, trigger=TRIGGER)


def _retry(engine: Engine, now: datetime):
    return retry.run(engine, now=now, trigger=TRIGGER)


def _watch(engine: Engine, now: datetime):
    from jobs.alerting import watch

    settings = get_settings()
    return watch.run(engine, now=now, settings=settings, channels=watch.settings_channels(settings),
                     trigger=TRIGGER)


def _sweep(engine: Engine, now: datetime, *, lookback_hours: int):
    settings = get_settings()
    redeliver = None
    if settings.MONITOR_REPLAY_URL:  # configured: what the sweep finds is re-delivered at once
        from jobs.replay.redeliver import Redeliverer

        try:
            redeliver = Redeliverer.from_settings(settings, source="sweep")
        except ConfigError as exc:  # finding missed events must not depend on replaying them
            log.warning("sweep: not replaying (%s)", exc)
    try:
        return sweep.run(engine, now=now, gateway=gateway_from_settings(settings),
                         event_types=sweep_event_types(settings.MONITOR_SWEEP_EVENT_TYPES),
                         lookback_hours=lookback_hours, redeliver=redeliver, trigger=TRIGGER,
                         endpoint_url=settings.MONITOR_STRIPE_ENDPOINT_URL)
    finally:
        if redeliver is not None:
            redeliver.close()


# The jobs of the timetable's JOB_NAMES, each run with its defaults.
SCHEDULABLE: dict[str, Callable[[Engine, datetime], object]] = {
    "reconcile": _reconcile,
    "cleanup": _cleanup,
    "health-snapshot": _health_snapshot,
    "health-report": _health_report,
    "retry": _retry,
    "watch": _watch,  # one evaluation and delivery per fire time (`watch=* * * * *`: every minute)
    "sweep": lambda engine, now: _sweep(engine, now, lookback_hours=sweep.SCHEDULED_LOOKBACK_HOURS),
    "sweep-daily": lambda engine, now: _sweep(engine, now, lookback_hours=sweep.DEFAULT_LOOKBACK_HOURS),
}
if set(SCHEDULABLE) != set(JOB_NAMES):  # the timetable's names and the runner's jobs are one list
    raise ImportError(f"jobs.schedule.runner runs {sorted(SCHEDULABLE)}, the timetable names {sorted(JOB_NAMES)}")


@dataclass(frozen=True)
class Outcome:
    job: str
    fire_time: datetime
    status: str  # "ran", "claimed_elsewhere", "busy", "failed"
    message: str = ""


def fire(engine: Engine, job: str, *, fire_time: datetime, now: datetime,
         host: str | None = None) -> Outcome:
    """Claim ``fire_time`` for ``job`` and run it; never raises for the job's own failures,
    so one failing job does not stop the scheduler."""
    try:
        with engine.begin() as conn:
            claimed = SQL.execute(conn, "claim_fire_time", job=job, fire_time=fire_time,
                                  host=host or socket.gethostname()).first()
            SQL.execute(conn, "forget_old_claims", job=job, before=fire_time - KEEP_CLAIMS)
        if not claimed:
            return Outcome(job, fire_time, "claimed_elsewhere", "another scheduler runs this one")
        result = SCHEDULABLE[job](engine, now)
    except JobBusy as exc:
        return Outcome(job, fire_time, "busy", str(exc))
    except Exception as exc:  # the scheduler must outlive any one run; job_runs has the details
        return Outcome(job, fire_time, "failed", error_line(exc))
    status = getattr(result, "status", "completed")
    run_id = getattr(result, "run_id", None) or getattr(result, "id", None)
    if status == "failed":
        return Outcome(job, fire_time, "failed", getattr(result, "error", None) or "failed")
    return Outcome(job, fire_time, "ran", f"{status}" + (f" (run {run_id})" if run_id else ""))


def run_entry(engine: Engine, entry: Entry) -> Outcome:
    """What the scheduler calls at a fire time: the live clock enters here only."""
    now = datetime.now(timezone.utc)
    outcome = fire(engine, entry.job, fire_time=latest_fire_time(entry, now), now=now)
    level = logging.WARNING if outcome.status == "failed" else logging.INFO
    log.log(level, "%s (%s): %s%s", entry.job, outcome.fire_time.isoformat(timespec="minutes"),
            outcome.status, f": {outcome.message}" if outcome.message else "")
    return outcome


def beat(engine: Engine) -> None:
    """The scheduler's heartbeat (every minute): the verdict says so when it stops."""
    try:
        with engine.begin() as conn:
            heartbeats.beat(conn, "schedule", now=datetime.now(timezone.utc))
    except Exception as exc:  # a database away for a minute must not stop the scheduler
        log.warning("could not record the scheduler's heartbeat: %s", error_line(exc))


def build_scheduler(engine: Engine, entries: list[Entry], *, settings: Settings | None = None,
                    scheduler_class=BlockingScheduler):
    """An APScheduler scheduler with one job per entry (not started)."""
    settings = settings or get_settings()
    scheduler = scheduler_class(timezone=settings.MONITOR_SCHEDULE_TIMEZONE, job_defaults={
        "coalesce": True,  # after a pause, run a missed job once, not once per missed time
        "max_instances": 1,
        "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
    })
    for entry in entries:
        scheduler.add_job(run_entry, entry.trigger, args=[engine, entry], id=entry.job, name=entry.job)
    scheduler.add_job(beat, IntervalTrigger(seconds=int(heartbeats.SCHEDULE_BEAT.total_seconds())), args=[engine],
                      id="heartbeat", name="heartbeat", next_run_time=datetime.now(timezone.utc))
    return scheduler


# --- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", action="store_true",
                        help="print the schedule and each job's next run, then exit")


def main(args: argparse.Namespace, ctx) -> int:
    entries = load_schedule(ctx.settings)
    now = ctx.now()
    upcoming = next_fire_times(entries, now)
    if args.show:
        if args.json:
            ctx.print_json({e.job: {"cron": e.expression, "next_run": upcoming[e.job].isoformat()} for e in entries})
        else:
            for entry in entries:
                ctx.say(f"{entry.job:<16} {entry.expression:<20} next {upcoming[entry.job].isoformat()}")
        return 0
    engine = ctx.jobs_engine()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = build_scheduler(engine, entries, settings=ctx.settings)

    def stop(_signum, _frame):  # systemd and Kubernetes stop with SIGTERM
        log.info("stopping; waiting for running jobs to finish")
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    for entry in entries:
        log.info("%s at '%s' (%s), next %s", entry.job, entry.expression,
                 ctx.settings.MONITOR_SCHEDULE_TIMEZONE, upcoming[entry.job].isoformat())
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    return 0
