"""The timetable: which job runs when, as plain functions of a given ``now``.

It knows the schedulable jobs by name only (:data:`JOB_NAMES`), so the alert rules and the
dashboard's Health page can ask when a job was due without loading any job; the runner
(:mod:`jobs.schedule.runner`) maps the names to the jobs. ``MONITOR_SCHEDULE`` holds crontab
expressions (weekdays as names) read by APScheduler's cron trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from core.errors import ConfigError
from core.settings import Settings, get_settings, schedule_entries

# The jobs a schedule may name. The sweep has two entries: a frequent short pass (what went
# missing lately, found within minutes) and a daily pass over Stripe's whole 3-day retry window.
JOB_NAMES = ("reconcile", "cleanup", "health-snapshot", "health-report", "retry", "watch", "sweep",
             "sweep-daily")
# A fire missed by up to this much (the machine was busy or asleep) still runs, once.
MISFIRE_GRACE = timedelta(minutes=10)
# A run that started up to this long before its fire time counts for it (clocks of two
# machines, a run started by hand just before).
STARTED_EARLY = timedelta(minutes=1)


@dataclass(frozen=True)
class Entry:
    job: str
    expression: str  # crontab fields, weekdays as names
    trigger: CronTrigger


def load_schedule(settings: Settings | None = None) -> list[Entry]:
    """The configured entries with their triggers; ConfigError for an unknown job or an empty schedule."""
    settings = settings or get_settings()
    try:
        entries = schedule_entries(settings.MONITOR_SCHEDULE)
    except ValueError as exc:  # settings validated it already; kept for direct callers
        raise ConfigError(f"MONITOR_SCHEDULE: {exc}") from None
    unknown = sorted(set(entries) - set(JOB_NAMES))
    if unknown:
        raise ConfigError(f"MONITOR_SCHEDULE names unknown job(s) {', '.join(unknown)}; "
                          f"known: {', '.join(JOB_NAMES)}")
    if not entries:
        raise ConfigError("MONITOR_SCHEDULE lists no job; e.g. 'cleanup=30 3 * * *'")
    zone = settings.MONITOR_SCHEDULE_TIMEZONE
    return [Entry(job, expression, CronTrigger.from_crontab(expression, timezone=zone))
            for job, expression in entries.items()]


def next_fire_times(entries: list[Entry], now: datetime) -> dict[str, datetime]:
    """Each job's next fire time at or after ``now``."""
    return {entry.job: entry.trigger.get_next_fire_time(None, now) for entry in entries}


def due(entries: list[Entry], after: datetime, until: datetime) -> list[tuple[datetime, str]]:
    """Every (fire time, job) with ``after < fire time <= until``, in time order."""
    fires = []
    for entry in entries:
        moment = entry.trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        while moment is not None and moment <= until:
            fires.append((moment, entry.job))
            moment = entry.trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return sorted(fires)


def latest_due(entry: Entry, moment: datetime) -> datetime | None:
    """The entry's last fire time at or before ``moment`` (looking back up to 32 days), or None."""
    for back in (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32)):
        recent = due([entry], moment - back, moment)
        if recent:
            return recent[-1][0]
    return None


def load_schedule_quietly(settings: Settings | None = None) -> dict[str, Entry]:
    """The schedule by job, or {} when it is invalid (the alert rules must not fail on it)."""
    try:
        return {entry.job: entry for entry in load_schedule(settings)}
    except ConfigError:
        return {}


def latest_fire_time(entry: Entry, now: datetime) -> datetime:
    """The fire time a run starting at ``now`` belongs to (the last one within the grace)."""
    recent = due([entry], now - MISFIRE_GRACE, now)
    return recent[-1][0] if recent else now.replace(second=0, microsecond=0)



def missed_fire_time(entry: Entry, last_started_at: datetime | None, now: datetime, *,
                     grace: timedelta) -> datetime | None:
    """The fire time the entry missed: its last one more than ``grace`` before ``now`` with no
    run started since (or None). The ``job_failed`` alert and the Health page's schedule
    table both call a job overdue by this."""
    fire_time = latest_due(entry, now - grace)
    if fire_time is None:
        return None
    if last_started_at is not None and last_started_at >= fire_time - STARTED_EARLY:
        return None
    return fire_time
