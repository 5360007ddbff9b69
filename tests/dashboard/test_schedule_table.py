"""The Health page's schedule table: last and next run of each scheduled job, overdue ones named."""

from datetime import datetime, timedelta, timezone

from core.settings import get_settings
from dashboard.views.health.schedule_table import schedule_table
from jobs.schedule.timetable import load_schedule

NOW = datetime(2026, 11, 20, 12, 10, tzinfo=timezone.utc)
GRACE = timedelta(minutes=30)


def entries():
    return load_schedule(get_settings(MONITOR_SCHEDULE="reconcile=0 3 * * *;sweep-daily=0 11 * * *;retry=0 0 1 1 *"))


def test_a_job_that_missed_its_time_is_overdue_and_one_that_ran_is_on_time():
    last_runs = {"reconcile": {"last_run_at": datetime(2026, 11, 20, 3, 0, 5, tzinfo=timezone.utc),
                               "last_status": "completed"},
                 "sweep": {"last_run_at": datetime(2026, 11, 19, 11, 0, tzinfo=timezone.utc),
                           "last_status": "completed"}}
    table = schedule_table(entries(), last_runs, NOW, grace=GRACE).set_index("job")
    assert table.loc["reconcile", "state"] == "on time"
    assert table.loc["reconcile", "next_run_at"] == datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc)
    assert table.loc["sweep-daily", "state"].startswith("overdue: due 2026-11-20 11:00 UTC")
    # Never ran and not due within the last 32 days: nothing to call overdue yet.
    assert table.loc["retry", "last_status"] == "never ran" and table.loc["retry", "state"] == "on time"


def test_within_the_grace_a_job_is_not_overdue_yet():
    yesterday = {"sweep": {"last_run_at": datetime(2026, 11, 19, 11, 0, tzinfo=timezone.utc), "last_status": "completed"}}
    table = schedule_table(entries(), yesterday, datetime(2026, 11, 20, 11, 20, tzinfo=timezone.utc), grace=GRACE)
    assert table.set_index("job").loc["sweep-daily", "state"] == "on time"
