"""The embedded PostgreSQL used when DATABASE_URL is unset.

pgserver ships a real PostgreSQL 16 in a wheel. The server is started once and left running
(cleanup_mode=None) so the dashboard, the jobs and the receiver, each in its own process,
share one data folder; it listens on a Unix socket inside that folder only.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from core.errors import ConfigError

_servers: dict[Path, object] = {}
_dashboard_roles_ready: set[str] = set()
DASHBOARD_ROLE = "webhook_monitor_dashboard"


def embedded_url(monitor_data_dir: Path, *, keep_running: bool = True) -> str:
    """Start (or attach to) the embedded server under ``monitor_data_dir``; return its URL.

    ``keep_running=False`` stops the server when this process exits (tests); otherwise it
    stays up for the next process, as the dashboard and the jobs expect.
    """
    data_dir = _pgdata(monitor_data_dir)
    server = _servers.get(data_dir)
    if server is None:
        server = _start(data_dir, cleanup_mode=None if keep_running else "stop")
        _servers[data_dir] = server
    socket_dir = data_dir
    # pgserver puts the socket in the data folder unless that path is too long for a socket.
    info = server.get_postmaster_info()
    if getattr(info, "socket_dir", None):
        socket_dir = Path(info.socket_dir)
    port = getattr(info, "port", None) or 5432
    return f"postgresql+psycopg://postgres@/postgres?host={socket_dir}&port={port}"


def _pgdata(monitor_data_dir: Path) -> Path:
    return Path(monitor_data_dir).expanduser().resolve() / "pgdata"


def embedded_running(monitor_data_dir: Path) -> bool:
    """True when an embedded server is already up for this data folder."""
    pgdata = _pgdata(monitor_data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return bool(info is not None and info.is_running())


def stop_embedded(monitor_data_dir: Path) -> None:
    """Stop the embedded server of this data folder (a fast shutdown: sessions end, data stays)."""
    pgdata = _pgdata(monitor_data_dir)
    server = _servers.pop(pgdata, None)
    if not embedded_running(monitor_data_dir):
        return
    import pgserver

    user = getattr(server, "system_user", None) or ("pgserver" if os.geteuid() == 0 else None)
    # cwd "/": as root, pg_ctl runs as the pgserver user, who may not enter the caller's folder.
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, cwd="/", timeout=30)


def _start(data_dir: Path, cleanup_mode: str | None):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            import pgserver
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ConfigError(f"the embedded database needs the 'pgserver' package ({exc}); "
                          "install the project or set DATABASE_URL") from None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pgserver.get_server(data_dir, cleanup_mode=cleanup_mode)
    except Exception as exc:
        log = data_dir / "log"
        raise ConfigError(
            f"could not start the embedded PostgreSQL in {data_dir} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); see {log}, "
            "or set DATABASE_URL to use another server"
        ) from None


def ensure_dashboard_role(url: str) -> None:
    """Create or refresh the embedded database's read-only dashboard role (core/embedded.sql).

    Runs as the embedded superuser; grants SELECT on every table present, so ``migrate``
    calls it again after adding tables.
    """
    import sqlalchemy as sa

    from core.sql import load_package

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            load_package("core", "embedded.sql").execute(conn, "ensure_dashboard_role")
    finally:
        engine.dispose()
    _dashboard_roles_ready.add(url)


def embedded_dashboard_url(monitor_data_dir: Path) -> str:
    """The embedded database's URL for the dashboard: its read-only, non-superuser role."""
    import sqlalchemy as sa

    url = embedded_url(monitor_data_dir)
    if url not in _dashboard_roles_ready:
        ensure_dashboard_role(url)
    return sa.engine.make_url(url).set(username=DASHBOARD_ROLE).render_as_string(hide_password=False)
