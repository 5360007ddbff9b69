"""Test fixtures on a real PostgreSQL.

With DATABASE_URL unset, a throwaway embedded PostgreSQL (pgserver) is started in a temporary
folder. With DATABASE_URL set, a scratch database is created on that server and dropped at
the end, so the tests never touch the data DATABASE_URL points at. Either way the process
environment's DATABASE_URL is pointed at the test database, so code under test and the
subprocesses it starts (CLI, Streamlit, the receiver) all use it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.db import create_dashboard_engine, create_jobs_engine, normalise_url
from core.embedded import embedded_url
from jobs import migrate

REPO = Path(__file__).resolve().parent.parent


def _scratch_database(server_url: str):
    """Create a uniquely named database on the user's server; return (url, drop)."""
    admin = sa.create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"webhook_monitor_test_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(normalise_url(server_url)).set(database=name)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def database_url() -> str:
    """URL of an empty, migrated test database; exported as DATABASE_URL for the session."""
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "DASHBOARD_DATABASE_URL", "MONITOR_DATA_DIR")}
    drop = None
    if saved["DATABASE_URL"]:
        url, drop = _scratch_database(saved["DATABASE_URL"])
    else:
        # A folder of its own rather than pytest's numbered temp folders: pytest prunes old
        # ones, which can pull the data folder from under another test run still going.
        data_dir = Path(tempfile.mkdtemp(prefix="webhook-monitor-tests-"))
        # Run as root, PostgreSQL runs as its own user, which must pass through this folder
        # (the embedded start never opens folders it did not create).
        data_dir.chmod(0o711)
        # Registered before the server starts, so it runs after pgserver's own exit hook has
        # stopped the server (exit hooks run last-registered first).
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
        url = embedded_url(data_dir, keep_running=False)
        os.environ["MONITOR_DATA_DIR"] = str(data_dir)
    os.environ["DATABASE_URL"] = url
    os.environ.pop("DASHBOARD_DATABASE_URL", None)
    engine = create_jobs_engine()
    migrate.run(engine)
    engine.dispose()
    yield url
    if drop:
        drop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def engine(database_url):
    engine = create_jobs_engine()
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def project_tables(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("""
            SELECT tablename FROM pg_tables
            WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
            ORDER BY tablename""")).scalars())


@pytest.fixture
def db(engine, project_tables):
    """The read-write engine on an emptied database (every project table truncated)."""
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in project_tables)
                             + " RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def dashboard_engine(db):
    engine = create_dashboard_engine()
    yield engine
    engine.dispose()
