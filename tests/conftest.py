"""Test fixtures on a real PostgreSQL (registered here once, for every test module).

The database comes from ``devharness.ThrowawayDatabase``: with DATABASE_URL unset, a
throwaway embedded PostgreSQL (pgserver) in a temporary folder; with DATABASE_URL set, a
scratch database created on that server and dropped at the end, so the tests never touch the
data DATABASE_URL points at. Either way the process environment's DATABASE_URL is pointed at
the test database for the session, so code under test and the subprocesses it starts (CLI,
Streamlit, the receiver) all use it; the environment is restored afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.db import create_dashboard_engine, create_jobs_engine
from devharness import ThrowawayDatabase, empty_tables, patched_env, refused_port
from devharness import project_tables as list_project_tables

REPO = Path(__file__).resolve().parent.parent

# Fixtures shared by many modules, available to every test without an import: the local
# Stripe API (stripe_server), the dashboard logged out of its login (login_off), stale pending
# registrations (mixed), the demo's Stripe state (demo) and a month of events (month_of_events).
pytest_plugins = ["tests.support.stripe_server", "tests.support.apptest", "tests.support.stale_registrations",
                  "tests.support.demo", "tests.support.dashboard_samples"]


@pytest.fixture(scope="session")
def database_url() -> str:
    """URL of an empty, migrated test database; exported as DATABASE_URL for the session."""
    # Not durable: an embedded test server skips fsync (its data dies with the session).
    with ThrowawayDatabase(prefix="webhook_monitor_test", durable=False) as database:
        env = {"DATABASE_URL": database.url, "DASHBOARD_DATABASE_URL": None}
        if database.data_dir is not None:
            env["MONITOR_DATA_DIR"] = str(database.data_dir)
        with patched_env(env):
            yield database.url


@pytest.fixture(scope="session")
def engine(database_url):
    engine = create_jobs_engine()
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def project_tables(engine) -> list[str]:
    return list_project_tables(engine)


@pytest.fixture
def db(engine):
    """The read-write engine on an emptied database (every project table truncated)."""
    empty_tables(engine)
    return engine


@pytest.fixture
def dashboard_engine(db):
    engine = create_dashboard_engine()
    yield engine
    engine.dispose()


@pytest.fixture
def down_port() -> int:
    """A loopback port where connections are refused ("the server is down"), held for the test
    so that nothing starts listening there meanwhile."""
    with refused_port() as port:
        yield port


def pytest_terminal_summary(terminalreporter):
    """CI's dependency audit outcome (.ci/run sets DEPENDENCY_AUDIT), repeated just above the
    test summary so that "dependency audit SKIPPED" stays in sight."""
    outcome = os.environ.get("DEPENDENCY_AUDIT")
    if outcome:
        terminalreporter.write_line(outcome, yellow="SKIPPED" in outcome, red="FAILED" in outcome)
