"""A PostgreSQL server whose roles, grants and default privileges are a Supabase project's.

    with SupabaseServer() as server:
        url = server.project_database()   # a new database, as a project's `postgres` database
        run_things(url)                   # logged in as `postgres`, no superuser, as on Supabase

An embedded server of its own (roles belong to a server, and these must not leak into other
tests' databases): its bootstrap superuser is renamed supabase_admin and a `postgres` role
with Supabase's attributes is created, so the names and privileges are the real ones
(devharness/supabase.sql says where each fact comes from).
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.sql import load_package
from devharness.database import ThrowawayDatabase
from devharness.env import patched_env
from devharness.ports import listening_socket

SQL = load_package("devharness", "supabase.sql")


def _as(url: str, user: str) -> str:
    return sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)


def _run(url: str, *names: str) -> None:
    engine = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with engine.connect() as conn:
            for name in names:
                SQL.execute(conn, name)
    finally:
        engine.dispose()


class SupabaseServer:
    """Context manager; ``url`` logs in as `postgres`, ``admin_url(url)`` as supabase_admin."""

    def __init__(self) -> None:
        self._server: ThrowawayDatabase | None = None
        self._databases: list[ThrowawayDatabase] = []
        self.url: str | None = None

    def __enter__(self) -> "SupabaseServer":
        with patched_env({"DATABASE_URL": None}):
            self._server = ThrowawayDatabase(migrate=False, durable=False, prefix="webhook_monitor_supabase")
            self._server.__enter__()
        try:
            bootstrap = _as(self._server.url, "postgres")
            _run(bootstrap, "setup_superuser")
            _run(_as(bootstrap, "webhook_monitor_setup"), "bootstrap_becomes_supabase_admin")
            _run(_as(bootstrap, "supabase_admin"), "drop_setup_superuser", "supabase_roles")
            self.url = bootstrap  # the same name, now Supabase's non-superuser `postgres`
        except BaseException:
            self.close()
            raise
        return self

    @staticmethod
    def admin_url(url: str) -> str:
        return _as(url, "supabase_admin")

    def project_database(self) -> str:
        """A new database as a project's: created by `postgres`, with Supabase's grants."""
        database = ThrowawayDatabase(server_url=self.url, migrate=False, prefix="webhook_monitor_project")
        database.__enter__()
        self._databases.append(database)
        _run(self.admin_url(database.url), "supabase_database")
        return database.url

    @staticmethod
    @contextmanager
    def tcp_url(url: str) -> Iterator[str]:
        """A ``postgresql://`` URL on a loopback port for ``url``'s database, for clients that
        take no socket folder (the Supabase CLI): connections to the port are relayed to the
        embedded server's socket, which listens on no TCP port of its own."""
        parsed = sa.engine.make_url(url)
        socket_path = f"{parsed.query['host']}/.s.PGSQL.{parsed.query.get('port', '5432')}"
        listener = listening_socket()
        relays: list[socket.socket] = []

        def relay(source: socket.socket, target: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    target.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, target):
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def accept() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return  # the listener was closed
                server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                server.connect(socket_path)
                relays.extend((client, server))
                for source, target in ((client, server), (server, client)):
                    threading.Thread(target=relay, args=(source, target), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        host, port = listener.getsockname()[:2]
        try:
            yield f"postgresql://{parsed.username}@{host}:{port}/{parsed.database}?sslmode=disable"
        finally:
            listener.close()
            for end in relays:
                end.close()

    def close(self) -> None:
        for database in reversed(self._databases):
            database.close()
        self._databases.clear()
        if self._server is not None:
            server, self._server = self._server, None
            server.close()

    def __exit__(self, *exc) -> None:
        self.close()
