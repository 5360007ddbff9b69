"""The scheduler: configured times, which jobs are due when, one run per fire time, lock respect."""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from core.errors import ConfigError
from core.settings import get_settings
from jobs.runtime import job_lock
from jobs.schedule import runner as schedule
from jobs.schedule import timetable

UTC = timezone.utc


def entries(monkeypatch, value=None, zone=None):
    if value is not None:
        monkeypatch.setenv("MONITOR_SCHEDULE", value)
    if zone is not None:
        monkeypatch.setenv("MONITOR_SCHEDULE_TIMEZONE", zone)
    return timetable.load_schedule(get_settings())


def test_default_schedule_runs_reconcile_and_cleanup_daily_and_snapshots_hourly(monkeypatch):
    monkeypatch.delenv("MONITOR_SCHEDULE", raising=False)
    monkeypatch.delenv("MONITOR_SCHEDULE_TIMEZONE", raising=False)
    day = datetime(2026, 3, 10, tzinfo=UTC)
    fires = timetable.due(entries(monkeypatch), day, day + timedelta(days=1))
    jobs = [job for _when, job in fires]
    assert jobs.count("reconcile") == 1 and jobs.count("cleanup") == 1 and jobs.count("health-snapshot") == 24
    assert (day + timedelta(hours=3), "reconcile") in fires
    assert (day + timedelta(hours=3, minutes=30), "cleanup") in fires


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 3, 10, 3, 29, 59, tzinfo=UTC), datetime(2026, 3, 10, 3, 30, tzinfo=UTC)),
    (datetime(2026, 3, 10, 3, 30, tzinfo=UTC), datetime(2026, 3, 10, 3, 30, tzinfo=UTC)),
    (datetime(2026, 3, 10, 3, 30, 1, tzinfo=UTC), datetime(2026, 3, 11, 3, 30, tzinfo=UTC)),
])
def test_next_fire_time_from_a_given_now(monkeypatch, now, expected):
    assert timetable.next_fire_times(entries(monkeypatch, "cleanup=30 3 * * *"), now) == {"cleanup": expected}


def test_weekday_numbers_mean_what_they_mean_in_crontab(monkeypatch):
    [entry] = entries(monkeypatch, "cleanup=0 4 * * 0")  # 0 = Sunday, as in crontab
    fire = timetable.next_fire_times([entry], datetime(2026, 3, 10, tzinfo=UTC))["cleanup"]
    assert fire.strftime("%A %H:%M") == "Sunday 04:00"


def test_times_are_read_in_the_configured_time_zone(monkeypatch):
    [entry] = entries(monkeypatch, "reconcile=0 3 * * *", zone="Europe/Berlin")
    fire = timetable.next_fire_times([entry], datetime(2026, 7, 1, tzinfo=UTC))["reconcile"]
    assert fire.astimezone(UTC) == datetime(2026, 7, 1, 1, 0, tzinfo=UTC)  # 03:00 CEST


def test_due_lists_only_fires_inside_the_interval(monkeypatch):
    schedule_entries = entries(monkeypatch, "cleanup=30 3 * * *;health-snapshot=0 * * * *")
    start = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    assert timetable.due(schedule_entries, start, start + timedelta(minutes=30)) == [
        (start + timedelta(minutes=30), "cleanup")]
    assert timetable.due(schedule_entries, start - timedelta(seconds=1), start) == [(start, "health-snapshot")]


@pytest.mark.parametrize("value, fragment", [
    ("backup=0 3 * * *", "unknown job(s) backup"),
    ("cleanup=0 3 * *", "needs 5 fields"),
    ("cleanup=61 3 * * *", "cleanup:"),
    ("cleanup", "is not 'job=minute hour day month weekday'"),
    (" ; ", "lists no job"),
])
def test_bad_schedules_are_config_errors(monkeypatch, value, fragment):
    monkeypatch.setenv("MONITOR_SCHEDULE", value)
    with pytest.raises(ConfigError, match="MONITOR_SCHEDULE") as info:
        timetable.load_schedule(get_settings())
    assert fragment in str(info.value)


def test_bad_time_zone_is_a_config_error(monkeypatch):
    monkeypatch.setenv("MONITOR_SCHEDULE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="MONITOR_SCHEDULE_TIMEZONE"):
        get_settings()


def job_runs(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT job, status, trigger FROM job_runs ORDER BY id")).all()


def test_scheduler_fires_a_job_at_its_time(db, monkeypatch):
    schedule_entries = entries(monkeypatch, "health-snapshot=15 * * * *")
    now = datetime.now(UTC).replace(microsecond=0)
    [(fire_time, job)] = timetable.due(schedule_entries, now - timedelta(hours=1), now)
    assert fire_time.minute == 15 and job == "health-snapshot"

    outcome = schedule.fire(db, job, fire_time=fire_time, now=now)
    assert outcome.status == "ran"
    assert job_runs(db) == [("health-snapshot", "completed", "schedule")]
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT trigger FROM database_health_snapshots")).scalar() == "schedule"


def test_two_schedulers_run_one_fire_time_once(db, monkeypatch):
    fire_time = datetime.now(UTC).replace(second=0, microsecond=0)
    first = schedule.fire(db, "health-snapshot", fire_time=fire_time, now=fire_time, host="machine-a")
    second = schedule.fire(db, "health-snapshot", fire_time=fire_time, now=fire_time, host="machine-b")
    assert (first.status, second.status) == ("ran", "claimed_elsewhere")
    assert len(job_runs(db)) == 1
    nxt = schedule.fire(db, "health-snapshot", fire_time=fire_time + timedelta(hours=1), now=fire_time, host="machine-b")
    assert nxt.status == "ran" and len(job_runs(db)) == 2


def test_a_job_still_running_elsewhere_is_skipped_not_doubled(db):
    fire_time = datetime.now(UTC).replace(second=0, microsecond=0)
    with job_lock(db, "health-snapshot"):  # e.g. started by hand from the command line
        outcome = schedule.fire(db, "health-snapshot", fire_time=fire_time, now=fire_time)
    assert outcome.status == "busy" and "in progress" in outcome.message
    assert job_runs(db) == [("health-snapshot", "skipped", "schedule")]


def test_a_failing_job_is_reported_and_the_scheduler_goes_on(db, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    fire_time = datetime.now(UTC).replace(second=0, microsecond=0)
    outcome = schedule.fire(db, "cleanup", fire_time=fire_time, now=fire_time)
    assert outcome.status == "failed" and "STRIPE_API_KEY is not set" in outcome.message
    assert job_runs(db) == [("cleanup", "failed", "schedule")]


def test_apscheduler_gets_one_job_per_entry_calling_the_job_function(db, monkeypatch):
    schedule_entries = entries(monkeypatch, "cleanup=30 3 * * *;health-snapshot=0 * * * *")
    scheduler = schedule.build_scheduler(db, schedule_entries, scheduler_class=BackgroundScheduler)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"cleanup", "health-snapshot", "heartbeat"}
        jobs["heartbeat"].func(*jobs["heartbeat"].args)  # the scheduler's beat, every minute
        with db.connect() as conn:
            assert conn.execute(sa.text("SELECT process FROM monitor_heartbeats")).scalars().all() == ["schedule"]
        probe = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
        assert jobs["cleanup"].trigger.get_next_fire_time(None, probe) == datetime(2026, 3, 10, 3, 30, tzinfo=UTC)
        assert jobs["cleanup"].next_run_time == timetable.next_fire_times(
            schedule_entries, datetime.now(UTC))["cleanup"]
        # What APScheduler calls at the fire time:
        outcome = jobs["health-snapshot"].func(*jobs["health-snapshot"].args)
    finally:
        scheduler.shutdown(wait=False)
    assert outcome.status == "ran" and job_runs(db) == [("health-snapshot", "completed", "schedule")]


def test_cli_show_prints_each_jobs_next_run(monkeypatch):
    monkeypatch.setenv("MONITOR_SCHEDULE", "reconcile=0 3 * * *;health-snapshot=0 * * * *")
    result = subprocess.run([sys.executable, "-m", "jobs", "schedule", "--show", "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["reconcile"]["cron"] == "0 3 * * *"
    assert datetime.fromisoformat(shown["health-snapshot"]["next_run"]).minute == 0


def test_cli_bad_schedule_exits_2_with_one_line(monkeypatch):
    monkeypatch.setenv("MONITOR_SCHEDULE", "cleanup=every day")
    result = subprocess.run([sys.executable, "-m", "jobs", "schedule", "--show"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "MONITOR_SCHEDULE" in result.stderr and "Traceback" not in result.stderr
