"""What the dashboard says when the database misbehaves, from real PostgreSQL errors."""

import pytest
import sqlalchemy as sa

from core.db import create_dashboard_engine
from core.settings import get_settings
from dashboard.data import describe_database_error


def error_from(engine, sql):
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
        conn.execute(sa.text(sql))
    return describe_database_error(str(engine.url), caught.value)


def test_statement_timeout(database_url):
    engine = create_dashboard_engine(get_settings(MONITOR_STATEMENT_TIMEOUT_MS=100))
    try:
        message = error_from(engine, "SELECT pg_sleep(2)")
    finally:
        engine.dispose()
    assert message.startswith("A query took longer than MONITOR_STATEMENT_TIMEOUT_MS allows")


def test_missing_table_says_to_migrate(dashboard_engine):
    message = error_from(dashboard_engine, "SELECT * FROM webhook_events_that_do_not_exist")
    assert "does not have the monitor's tables" in message and "python -m jobs migrate" in message


def test_unreachable_server_names_the_setting_and_hides_the_password():
    engine = sa.create_engine("postgresql+psycopg://monitor:hunter2@127.0.0.1:9/none")
    message = error_from(engine, "SELECT 1")
    assert message.startswith("cannot connect to the database postgresql+psycopg://monitor:***@127.0.0.1:9/none")
    assert "DASHBOARD_DATABASE_URL" in message and "hunter2" not in message
