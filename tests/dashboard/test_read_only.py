import pytest
import sqlalchemy as sa

from core.db import create_dashboard_engine


def test_dashboard_connection_cannot_write(dashboard_engine):
    with dashboard_engine.connect() as conn:
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            conn.execute(sa.text("DELETE FROM webhook_events"))


def test_dashboard_connection_has_a_statement_timeout(dashboard_engine, monkeypatch):
    with dashboard_engine.connect() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "5s"
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            conn.execute(sa.text("SET LOCAL statement_timeout = 50; SELECT pg_sleep(1)"))
    # The timeout is the one MONITOR_STATEMENT_TIMEOUT_MS sets, and it stops a slow query.
    monkeypatch.setenv("MONITOR_STATEMENT_TIMEOUT_MS", "200")
    short = create_dashboard_engine()
    try:
        with short.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "200ms"
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                conn.execute(sa.text("SELECT pg_sleep(1)"))
    finally:
        short.dispose()


def test_dashboard_statements_are_planned_for_their_parameters(dashboard_engine):
    """The events search is planned for the text searched (queries/events.sql); a prepared
    statement's generic plan would ignore it (76 s instead of 0.8 s at 10M events)."""
    with dashboard_engine.connect() as conn:
        assert conn.execute(sa.text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
