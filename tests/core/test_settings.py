import re

import pytest

from core.db import jobs_url
from core.errors import ConfigError
from core.settings import Settings, describe_settings, get_settings, schedule_entries
from tests.conftest import REPO


def readme_settings() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2].strip() for m in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, re.M)}


def test_readme_documents_every_setting_with_its_default():
    documented = readme_settings()
    declared = {name: default for name, default, _help in describe_settings()}
    assert set(documented) == set(declared), "README's configuration table and core/settings.py disagree"
    for name, default in declared.items():
        assert documented[name].strip("`") == default, f"{name}: README says {documented[name]}, code says {default}"


def test_every_setting_has_help():
    assert all(help_text for _name, _default, help_text in describe_settings())


def test_settings_are_read_when_used(monkeypatch):
    monkeypatch.setenv("MONITOR_STUCK_MINUTES", "6")
    assert get_settings().MONITOR_STUCK_MINUTES == 6
    monkeypatch.setenv("MONITOR_STUCK_MINUTES", "7")
    assert get_settings().MONITOR_STUCK_MINUTES == 7
    monkeypatch.setenv("MONITOR_STUCK_MINUTES", "6")  # back to a value read before
    assert get_settings().MONITOR_STUCK_MINUTES == 6
    monkeypatch.delenv("MONITOR_STUCK_MINUTES")
    assert get_settings().MONITOR_STUCK_MINUTES == Settings.model_fields["MONITOR_STUCK_MINUTES"].default
    assert get_settings(MONITOR_STUCK_MINUTES=9).MONITOR_STUCK_MINUTES == 9


def test_settings_read_again_are_the_same_object_and_cannot_be_changed(monkeypatch):
    # A page asks for the settings a dozen times per run: the second ask costs no validation,
    # and since every caller shares the object, none may change it for the others.
    monkeypatch.setenv("MONITOR_STUCK_MINUTES", "8")
    settings = get_settings()
    assert get_settings() is settings
    with pytest.raises(Exception, match="frozen"):
        settings.MONITOR_STUCK_MINUTES = 1
    assert get_settings().MONITOR_STUCK_MINUTES == 8


def test_a_bad_value_is_refused_every_time_it_is_read(monkeypatch):
    monkeypatch.setenv("MONITOR_STATEMENT_TIMEOUT_MS", "5")
    for _ in range(2):
        with pytest.raises(ConfigError, match="MONITOR_STATEMENT_TIMEOUT_MS"):
            get_settings()


def test_an_event_is_not_reported_stuck_while_its_worker_may_still_hold_it(monkeypatch):
    # Taking an event over from a hung worker (MONITOR_RECLAIM_MINUTES) comes before
    # calling it stuck; the other way round the dashboard would cry wolf over live work.
    monkeypatch.setenv("MONITOR_STUCK_MINUTES", "3")
    with pytest.raises(ConfigError, match="MONITOR_RECLAIM_MINUTES \\(5\\) must not exceed MONITOR_STUCK_MINUTES \\(3\\)") as info:
        get_settings()
    assert "\n" not in str(info.value)
    monkeypatch.setenv("MONITOR_RECLAIM_MINUTES", "3")
    settings = get_settings()
    assert (settings.MONITOR_RECLAIM_MINUTES, settings.MONITOR_STUCK_MINUTES) == (3, 3)


@pytest.mark.parametrize("name, value, fragment", [
    ("DATABASE_URL", "sqlite:///x.db", "must be a PostgreSQL URL"),
    ("MONITOR_AUTH", "maybe", "MONITOR_AUTH"),
    ("MONITOR_STATEMENT_TIMEOUT_MS", "5", "MONITOR_STATEMENT_TIMEOUT_MS"),
])
def test_bad_values_raise_one_line_config_errors(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=fragment) as info:
        get_settings()
    assert "\n" not in str(info.value)


def test_blank_values_count_as_unset(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "  ")
    monkeypatch.setenv("STRIPE_API_KEY", "")
    settings = get_settings()
    assert settings.DATABASE_URL is None and settings.STRIPE_API_KEY is None


def test_postgres_url_forms_are_accepted():
    assert Settings(DATABASE_URL="postgres://u:p@h/db").DATABASE_URL == "postgres://u:p@h/db"
    # ...and handed to the psycopg 3 driver whatever form was pasted.
    for pasted in ("postgres://u:p@h/db", "postgresql://u:p@h/db", "postgresql+psycopg2://u:p@h/db"):
        assert jobs_url(Settings(DATABASE_URL=pasted)) == "postgresql+psycopg://u:p@h/db"


@pytest.mark.parametrize("weekdays, expected_days", [
    ("0", {"Sunday"}),
    ("7", {"Sunday"}),
    ("1-5", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
    ("0-6", {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}),
    ("5-7", {"Friday", "Saturday", "Sunday"}),
    ("*/2", {"Sunday", "Tuesday", "Thursday", "Saturday"}),  # counted from Sunday, as crontab does
    ("1-5/2", {"Monday", "Wednesday", "Friday"}),
    ("sat,sun", {"Saturday", "Sunday"}),
])
def test_schedule_weekdays_fire_on_the_days_crontab_means(weekdays, expected_days):
    from datetime import datetime, timedelta, timezone

    from apscheduler.triggers.cron import CronTrigger

    [expression] = schedule_entries(f"cleanup=0 4 * * {weekdays}").values()
    trigger = CronTrigger.from_crontab(expression, timezone="UTC")
    moment = datetime(2025, 3, 2, tzinfo=timezone.utc)  # a Sunday
    fired = set()
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        fired.add(moment.strftime("%A"))
    assert fired == expected_days


@pytest.mark.parametrize("weekdays", ["8", "5-1", "*/0", "someday"])
def test_a_weekday_crontab_would_refuse_is_refused(weekdays):
    with pytest.raises(ValueError, match="cleanup: .*weekday"):
        schedule_entries(f"cleanup=0 4 * * {weekdays}")
