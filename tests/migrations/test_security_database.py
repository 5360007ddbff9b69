"""What the database lets each role do: row-level security everywhere, and the embedded
database's dashboard role is an ordinary read-only role that cannot take the jobs' locks."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.db import dashboard_url
from core.settings import get_settings
from dashboard import throttle
from jobs.runtime import LOCK_NAMESPACE


def test_every_table_the_project_creates_has_row_level_security(db):
    with db.connect() as conn:
        without = conn.execute(sa.text("""
            SELECT c.relname FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
              AND NOT c.relrowsecurity ORDER BY 1""")).scalars().all()
    assert without == []


@pytest.fixture
def embedded_settings(database_url):
    data_dir = os.environ.get("MONITOR_DATA_DIR")
    if not data_dir or not (Path(data_dir) / "pgdata").exists():
        pytest.skip("the tests run on DATABASE_URL's server, not on an embedded one")
    return get_settings(DATABASE_URL=None, DASHBOARD_DATABASE_URL=None, MONITOR_DATA_DIR=data_dir)


def test_the_embedded_dashboard_is_not_a_superuser_and_only_reads(db, embedded_settings):
    url = dashboard_url(embedded_settings)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            who = conn.execute(sa.text("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")).one()
            assert tuple(who) == ("webhook_monitor_dashboard", False)
            assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 0
            assert conn.execute(sa.text("SHOW default_transaction_read_only")).scalar() == "on"
        with engine.connect() as conn:
            conn.execute(sa.text("SET TRANSACTION READ WRITE"))
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text("DELETE FROM registrations"))
        with engine.connect() as conn:  # nor run a program on the server
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be superuser|privileges"):
                conn.execute(sa.text("COPY (SELECT 1) TO PROGRAM 'true'"))
        # It counts failed logins through the throttle's functions.
        assert throttle.take_turn(engine, client="client:t", account="account:t",
                                  now=datetime.now(timezone.utc)) == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("call", [
    "SELECT pg_try_advisory_lock(:ns, hashtext('reconcile'))",
    "SELECT pg_advisory_lock(:ns, hashtext('reconcile'))",
    "SELECT pg_try_advisory_xact_lock(:ns, hashtext('cleanup'))",
    "SELECT pg_try_advisory_lock_shared(:ns, hashtext('cleanup'))",
])
def test_the_embedded_dashboard_role_cannot_take_the_jobs_locks(db, embedded_settings, call):
    engine = sa.create_engine(dashboard_url(embedded_settings))
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(call), {"ns": LOCK_NAMESPACE})
    finally:
        engine.dispose()
    # The jobs still can.
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, hashtext('reconcile'))"),
                            {"ns": LOCK_NAMESPACE}).scalar()
        conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, hashtext('reconcile'))"), {"ns": LOCK_NAMESPACE})


@pytest.mark.parametrize("page", [None, "views/events/page.py", "views/errors/page.py", "views/funnel/page.py",
                                  "views/reconciliation/page.py", "views/health/page.py"])
def test_every_page_works_as_the_embedded_dashboard_role(db, embedded_settings, monkeypatch, page):
    from tests.support.apptest import open_dashboard, server_address
    from tests.support.dashboard_samples import add_sample_history

    with db.begin() as conn:
        add_sample_history(conn, datetime.now(timezone.utc), days=3)
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("MONITOR_AUTH", "none")
    with server_address("127.0.0.1"):
        at = open_dashboard(page)
    assert not at.exception
    assert not [e.value for e in at.error]


def test_what_the_embedded_dashboard_role_can_do_beyond_reading_is_what_the_docs_say(db, embedded_settings):
    """docs/security.md: it may reset the login throttle's counts and, as any reader, hold
    ACCESS SHARE locks; no stronger lock."""
    engine = sa.create_engine(dashboard_url(embedded_settings), hide_parameters=True)
    now = datetime.now(timezone.utc)
    try:
        for _ in range(4):
            throttle.take_turn(engine, client="client:192.0.2.9", account="account:docs", now=now)
        assert throttle.take_turn(engine, client="client:192.0.2.9", account="account:docs", now=now) > 0
        throttle.succeeded(engine, client="client:192.0.2.9", account="account:docs")
        assert throttle.take_turn(engine, client="client:192.0.2.9", account="account:docs", now=now) == 0
        with engine.connect() as conn:
            conn.execute(sa.text("LOCK TABLE webhook_events IN ACCESS SHARE MODE"))
        with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("LOCK TABLE webhook_events IN SHARE MODE"))
    finally:
        engine.dispose()
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert "resetting the throttle's counts" in docs and "ACCESS SHARE" in docs


def test_the_docs_run_the_receiver_with_its_header_time_limit():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert "python -m tracking.receiver --host 127.0.0.1" in docs
    assert "(`uvicorn tracking.receiver:app`)" not in docs
    # Login off on a shared machine: every local user gets in, write actions included.
    assert "every user of the machine can open" in docs
