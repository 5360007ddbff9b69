"""A throwaway PostgreSQL database, migrated, removed at the end.

With ``DATABASE_URL`` set (or ``server_url`` given), a uniquely named database is created on
that server and dropped with ``WITH (FORCE)`` at the end, so the data the URL points at is
never touched. Otherwise an embedded PostgreSQL (pgserver, the one the project runs without a
server) is started in a new temporary folder, stopped and deleted at the end.

    with ThrowawayDatabase() as db:
        run_things(db.url)            # db.data_dir: the embedded server's folder, or None

``durable=False`` runs the embedded server without fsync and synchronous commit (nothing in
it must survive a crash), which makes each commit, and each TRUNCATE, many times cheaper.
:func:`empty_tables` empties the project's tables between tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.db import normalise_url
from core.sql import load_package

SQL = load_package("devharness", "database.sql")


def project_tables(bind) -> list[str]:
    """The project's tables (public schema, not ``schema_migrations``), by name."""
    return [row["tablename"] for row in SQL.all(bind, "project_tables")]


def events_held(url: str) -> int:
    """How many webhook events the database at ``url`` holds (benchmarks run on a database
    loaded before report their figures under this size)."""
    engine = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)
    try:
        with engine.connect() as conn:
            return SQL.scalar(conn, "events_held")
    finally:
        engine.dispose()


def load_demo_history(url: str, *, events: int, days: int) -> float:
    """Migrate the database at ``url`` and load ``events`` demo events spread over ``days``
    days (``python -m jobs demo-data``, no Stripe state), as the benches' throwaway databases
    are loaded; returns the seconds it took."""
    import subprocess
    import sys
    import time

    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DASHBOARD_DATABASE_URL", None)
    started = time.monotonic()
    for command in (["migrate"], ["demo-data", "--days", str(days), "--events-per-day",
                                  str(max(1, events // days)), "--no-stripe-state"]):
        subprocess.run([sys.executable, "-m", "jobs", *command], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def empty_tables(bind) -> None:
    """Empty every project table (not ``schema_migrations``) and restart their sequences,
    in one TRUNCATE of them all (an engine or an open connection)."""
    if isinstance(bind, sa.engine.Engine):
        with bind.begin() as conn:
            SQL.execute(conn, "empty_project_tables")
    else:
        SQL.execute(bind, "empty_project_tables")


class ThrowawayDatabase:
    """A context manager whose value has ``url`` (``str`` of the database) and ``data_dir``.

    What to remove is decided on entry, so changing ``DATABASE_URL`` inside the block is safe.
    ``migrate``: apply the project's migrations before handing the database over.
    ``durable=False``: an embedded server runs without fsync and synchronous commit (tests:
    commits and TRUNCATEs get many times cheaper). Benchmarks keep the default, so their
    figures are those of a server configured as deployed.
    """

    def __init__(self, *, server_url: str | None = None, migrate: bool = True,
                 durable: bool = True, prefix: str = "webhook_monitor_scratch"):
        self.server_url = server_url
        self.migrate = migrate
        self.durable = durable
        self.prefix = prefix
        self.url: str | None = None
        self.data_dir: Path | None = None
        self._drop = None

    def __enter__(self) -> "ThrowawayDatabase":
        server_url = self.server_url or os.environ.get("DATABASE_URL")
        if server_url:
            self.url, self._drop = _scratch_database(server_url, self.prefix)
        else:
            self.url, self.data_dir, self._drop = _embedded_database(self.prefix, self.durable)
        try:
            if self.migrate:
                from jobs.admin import migrate

                engine = sa.create_engine(self.url, poolclass=NullPool, hide_parameters=True)
                try:
                    migrate.run(engine)
                finally:
                    engine.dispose()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._drop is not None:
            drop, self._drop = self._drop, None
            drop()

    def __exit__(self, *exc) -> None:
        self.close()

    def __str__(self) -> str:
        return self.url or "<throwaway database, not started>"


def _scratch_database(server_url: str, prefix: str):
    admin = sa.create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool, hide_parameters=True)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(normalise_url(server_url)).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def data_folder(prefix: str) -> Path:
    """A new temporary folder an embedded PostgreSQL can keep its data in (the caller removes it).

    A folder of its own, not a test runner's numbered temporary folder: those get pruned (and
    their root reset to owner-only), which can pull the data from under a run still going.
    Run as root, PostgreSQL runs as its own user, which must pass through this folder (the
    embedded start never opens up folders it did not create)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix.replace('_', '-')}-"))
    folder.chmod(0o711)
    return folder


def _embedded_database(prefix: str, durable: bool):
    from core.embedded import embedded_url, stop_embedded

    data_dir = data_folder(prefix)
    try:
        url = embedded_url(data_dir, keep_running=False)
        if not durable:
            _trade_durability_for_speed(url)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise

    def drop() -> None:
        # Stop the server before its folder goes: it needs the folder to shut down.
        try:
            stop_embedded(data_dir)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)

    return url, data_dir, drop


def _trade_durability_for_speed(url: str) -> None:
    """No fsync, no waiting for the WAL at commit: this server's data dies with the block."""
    engine = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with engine.connect() as conn:
            for name in ("throwaway_server_settings", "throwaway_server_commit",
                         "throwaway_server_full_pages", "reload_server_settings"):
                SQL.execute(conn, name)
    finally:
        engine.dispose()
