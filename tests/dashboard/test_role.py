"""The optional read-only role script: the role reads every project table and writes none."""

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO

PSQL = Path(__import__("pgserver").__file__).parent / "pginstall" / "bin" / "psql"


def run_script(database_url: str) -> None:
    libpq_url = database_url.replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run(
        [str(PSQL), "--no-psqlrc", "--quiet", "-v", "dashboard_password=s3cret-for-tests",
         "-f", str(REPO / "scripts" / "dashboard_role.sql"), libpq_url],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_role_reads_every_project_table_and_cannot_write(db, database_url, project_tables):
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO webhook_events (stripe_event_id, event_type, payload) VALUES ('evt_r', 't', '{}')"))
    run_script(database_url)
    run_script(database_url)  # running it again is safe

    role_url = sa.engine.make_url(database_url).set(username="webhook_monitor_dashboard", password="s3cret-for-tests")
    role_engine = sa.create_engine(role_url)
    try:
        with role_engine.connect() as conn:
            for table in project_tables:
                conn.execute(sa.text(f'SELECT count(*) FROM "{table}"'))
            # Row-level security lets this role see the rows, not an empty table.
            assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 1
        with role_engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction|permission denied"):
                conn.execute(sa.text("UPDATE webhook_events SET attempts = 9"))
    finally:
        role_engine.dispose()
    # Even a session that turns read-only transactions off has no right to write.
    writable = sa.create_engine(role_url, connect_args={"options": "-c default_transaction_read_only=off"})
    try:
        with writable.connect() as conn:
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text("INSERT INTO registrations (email) VALUES ('x@y.z')"))
    finally:
        writable.dispose()


def test_role_counts_failed_logins_through_the_throttle_only(db, database_url):
    from datetime import datetime, timezone

    from dashboard import throttle

    run_script(database_url)
    role_url = sa.engine.make_url(database_url).set(username="webhook_monitor_dashboard", password="s3cret-for-tests")
    role_engine = sa.create_engine(role_url)
    try:
        now = datetime.now(timezone.utc)
        assert throttle.take_turn(role_engine, client="client:x", account="account:y", now=now) == 0
        with role_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT failures FROM login_throttle WHERE key = 'client:x'")).scalar() == 1
        with role_engine.connect() as conn:
            conn.execute(sa.text("SET TRANSACTION READ WRITE"))
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text("DELETE FROM login_throttle"))
    finally:
        role_engine.dispose()
