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


def _many_app():
    import streamlit as st

    from dashboard import data

    data.refresh()
    rows = data.query_many(plan=("failure_plan", {}),
                           kpis=("event_kpis", dict(start=st.session_state["start"], end=st.session_state["end"],
                                                    stuck_before=st.session_state["end"])))
    st.write(f"plan {len(rows['plan'])}, kpis {data.first_row(rows['kpis']).get('events_received')}")


def test_queries_read_together_give_each_its_rows_and_a_failure_its_message(db, database_url, down_port, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from streamlit.testing.v1 import AppTest

    end = datetime.now(timezone.utc)
    from tests.support.factories import add_event

    with db.begin() as conn:
        add_event(conn, created_at=end - timedelta(hours=1))
    at = AppTest.from_function(_many_app, default_timeout=60)
    at.session_state["start"], at.session_state["end"] = end - timedelta(days=1), end + timedelta(minutes=1)
    at.run()
    assert not at.exception and not at.error
    assert [m.value for m in at.markdown] == ["plan 0, kpis 1"]  # no failure planned; one event
    # The database down: the page says so in one message, as a single read would, and draws
    # nothing after it.
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"postgresql+psycopg://monitor:pw@127.0.0.1:{down_port}/none")
    at.run()
    assert not at.exception and not at.markdown
    assert [e.value for e in at.error][0].startswith("**The dashboard cannot read its data.** cannot connect")
