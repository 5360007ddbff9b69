"""Database engines: one read-write factory for jobs, one read-only factory for the dashboard.

The dashboard is read-only by construction: it connects with DASHBOARD_DATABASE_URL (meant
for a read-only role) when set, and every one of its sessions also runs with
``default_transaction_read_only = on`` and a ``statement_timeout``, so a slip in a query can
neither write nor hold the database for long.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from core.embedded import embedded_dashboard_url, embedded_url
from core.errors import ConfigError
from core.settings import Settings, get_settings
from core.sql import load_package

SQL = load_package("core", "db.sql")


def normalise_url(url: str) -> str:
    """Accept the URL forms PostgreSQL users paste (postgres://, postgresql://) for psycopg 3."""
    scheme, rest = url.split("://", 1)
    if scheme.lower() in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    return url


NO_DATABASE_URL = ("DATABASE_URL is not set and MONITOR_EMBEDDED=off: set DATABASE_URL to the "
                   "PostgreSQL URL (postgresql://user:password@host:5432/dbname)")


def require_database_url(settings: Settings, *, dashboard: bool = False) -> None:
    """ConfigError when no URL is set and the embedded database may not stand in for one.

    In production (``MONITOR_EMBEDDED=off``) an embedded database would be a silent data loss:
    in a container its folder is gone at the next restart. The check runs before anything is
    started or created, so a refused process leaves no trace.
    """
    if settings.DATABASE_URL or (dashboard and settings.DASHBOARD_DATABASE_URL):
        return
    if settings.MONITOR_EMBEDDED == "off":
        raise ConfigError(NO_DATABASE_URL)


def jobs_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    require_database_url(settings)
    if settings.DATABASE_URL:
        return normalise_url(settings.DATABASE_URL)
    return embedded_url(settings.MONITOR_DATA_DIR)


def dashboard_url(settings: Settings | None = None) -> str:
    """DASHBOARD_DATABASE_URL; else, on the embedded database, its read-only non-superuser
    role (created on first use); else DATABASE_URL (read-only transactions only)."""
    settings = settings or get_settings()
    require_database_url(settings, dashboard=True)
    if settings.DASHBOARD_DATABASE_URL:
        return normalise_url(settings.DASHBOARD_DATABASE_URL)
    if not settings.DATABASE_URL:
        return embedded_dashboard_url(settings.MONITOR_DATA_DIR)
    return jobs_url(settings)


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r":[^:@/]*@", ":***@", url)


def create_jobs_engine(settings: Settings | None = None, **kwargs) -> Engine:
    """A read-write engine for jobs and migrations."""
    url = jobs_url(settings)
    kwargs.setdefault("pool_pre_ping", True)
    return _engine(url, session="jobs_session", session_params={}, **kwargs)


def create_dashboard_engine(settings: Settings | None = None) -> Engine:
    """A read-only engine with a statement timeout, for the dashboard's queries."""
    settings = settings or get_settings()
    url = dashboard_url(settings)
    return _engine(url, session="dashboard_session",
                   session_params={"timeout_ms": int(settings.MONITOR_STATEMENT_TIMEOUT_MS)},
                   pool_pre_ping=True, pool_size=5, max_overflow=5)


def _engine(url: str, *, session: str, session_params: dict, **kwargs) -> Engine:
    """An engine whose every new connection first runs the statement ``session`` of core/db.sql.

    Settings by a statement on connect, not by a startup ``options`` parameter: connection
    poolers (PgBouncer, Supabase's) refuse or drop startup options, but pass a statement through.
    """
    # hide_parameters: a failed statement's text then never carries its parameters (customers'
    # e-mail addresses, amounts) into logs, job_runs or alerts.
    try:
        engine = sa.create_engine(url, hide_parameters=True, **kwargs)
    except Exception as exc:
        raise ConfigError(f"cannot use database URL {describe_url(url)}: {exc}") from None
    statement = SQL[session]
    statement.check(session_params)
    # Compiled once for the driver: the hook gets a raw DBAPI connection.
    compiled = str(statement.statement.compile(dialect=engine.dialect))

    @sa.event.listens_for(engine, "connect")
    def _session_settings(dbapi_connection, _record):
        # Autocommit keeps the settings out of any transaction, so they last the session.
        previous = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cur:
            cur.execute(compiled, session_params)
        dbapi_connection.autocommit = previous

    return engine


def check_connection(engine: Engine) -> None:
    """Connect once, turning connection failures into one readable ConfigError line."""
    try:
        with engine.connect() as conn:
            SQL.execute(conn, "ping")
    except sa.exc.OperationalError as exc:
        raise ConfigError(connection_problem(engine.url, exc)) from None


def connection_problem(url, exc: BaseException) -> str:
    """One line saying which database could not be reached and why."""
    detail = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    reason = detail[0] if detail else type(exc).__name__
    reason = re.sub(r"^connection failed: ", "", reason)
    reason = re.sub(r'^connection to server at "[^"]*" \([^)]*\), port \d+ failed: ', "", reason)
    target = describe_url(str(url) if not isinstance(url, str) else url)
    return (f"cannot connect to the database {target}: {reason}. "
            "Check DATABASE_URL (host, port, user, password) and that the server is running.")
