"""Data access for every dashboard page: one read-only engine, cached named queries.

Pages call ``query_df(name, **params)`` / ``query_row(name, **params)`` with plain values
(datetimes, strings, lists); results are cached per (database, query, parameters) for
``CACHE_TTL_S`` seconds, at most ``CACHE_MAX_ENTRIES`` results. When the database cannot be
reached, is missing its tables or a query runs too long, these helpers show one clear
``st.error`` saying what to check and stop the page, so no page shows a traceback.

``current_window()`` is the window chosen in the sidebar (see dashboard/chrome.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd
import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine

from core.db import connection_problem, create_dashboard_engine, dashboard_url, describe_url
from core.errors import ConfigError
from core.settings import get_settings
from dashboard.window import Window, resolve_window
from queries import fetch_df

CACHE_TTL_S = 60
CACHE_MAX_ENTRIES = 256
WINDOW_KEY = "dashboard_window"


class DatabaseProblem(Exception):
    """Why the dashboard cannot show data, as one message meant for an administrator."""


def describe_database_error(url: str, exc: BaseException) -> str:
    """What went wrong talking to the database and what to check, in one paragraph."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    first_line = (str(orig or exc).strip().splitlines() or [type(exc).__name__])[0]
    if sqlstate == "57014":  # query_canceled: the statement timeout fired
        return ("A query took longer than MONITOR_STATEMENT_TIMEOUT_MS allows and was cancelled. "
                "Choose a shorter window, or check the database's load and indexes "
                "(`python -m jobs migrate` adds the dashboard's indexes).")
    if sqlstate in ("42P01", "42703"):  # undefined table / column: schema missing or old
        return (f"The database {describe_url(url)} does not have the monitor's tables "
                f"({first_line}). Run `python -m jobs migrate` against it.")
    if sqlstate == "42501":  # insufficient privilege
        return (f"The dashboard's database role may not read this data ({first_line}). "
                "Grant it read access (see scripts/dashboard_role.sql).")
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or sqlstate.startswith("08"):
        return connection_problem(url, exc).replace(
            "Check DATABASE_URL", "Check DASHBOARD_DATABASE_URL (or DATABASE_URL)")
    return f"The database {describe_url(url)} answered with an error: {first_line}"


def database_url() -> str:
    """The URL the dashboard reads from (starts the embedded database when none is set)."""
    try:
        return dashboard_url(get_settings())
    except ConfigError as exc:
        raise DatabaseProblem(str(exc)) from None


@st.cache_resource(show_spinner=False, max_entries=4)
def _engine_for(url: str, statement_timeout_ms: int) -> Engine:
    return create_dashboard_engine(get_settings(DASHBOARD_DATABASE_URL=url,
                                                MONITOR_STATEMENT_TIMEOUT_MS=statement_timeout_ms))


def get_engine() -> Engine:
    """The shared read-only engine (one pool per process, per database URL)."""
    try:
        settings = get_settings()
    except ConfigError as exc:
        raise DatabaseProblem(str(exc)) from None
    return _engine_for(database_url(), int(settings.MONITOR_STATEMENT_TIMEOUT_MS))


@st.cache_data(ttl=CACHE_TTL_S, max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def _cached_query(url: str, name: str, params: dict[str, Any]) -> pd.DataFrame:
    try:
        return fetch_df(get_engine(), name, **params)
    except sa.exc.DBAPIError as exc:
        raise DatabaseProblem(describe_database_error(url, exc)) from None


def fetch(name: str, **params: Any) -> pd.DataFrame:
    """A named query's rows (cached); raises DatabaseProblem with a readable message."""
    return _cached_query(database_url(), name, params)


def query_df(name: str, **params: Any) -> pd.DataFrame:
    """A named query's rows (cached); on a database problem: st.error and stop the page."""
    try:
        return fetch(name, **params)
    except DatabaseProblem as exc:
        show_problem(exc)


def query_row(name: str, **params: Any) -> dict[str, Any]:
    """The first row of a named query as a dict ({} when it returned no row)."""
    df = query_df(name, **params)
    if df.empty:
        return {}
    return {key: (None if _is_missing(value) else value) for key, value in df.iloc[0].items()}


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, dicts: never "missing"
        return False


def show_problem(exc: BaseException) -> None:
    st.error(f"**The dashboard cannot read its data.** {exc}", icon=":material/database:")
    st.stop()


def refresh() -> None:
    """Forget every cached result, so the next run reads fresh data."""
    _cached_query.clear()
    _cached_verdict.clear()


def stuck_minutes() -> int:
    """MONITOR_STUCK_MINUTES: how long an event may stay 'processing' before it counts as stuck."""
    return int(get_settings().MONITOR_STUCK_MINUTES)


def current_window() -> Window:
    """The window chosen in the sidebar (last 24 hours before the sidebar has run)."""
    window = st.session_state.get(WINDOW_KEY)
    if isinstance(window, Window):
        return window
    return resolve_window("24h", utc_now())


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def _cached_verdict(url: str, now: datetime):
    from jobs.health.verdict import status

    try:
        return status(get_engine(), now=now, settings=get_settings())
    except sa.exc.DBAPIError as exc:
        raise DatabaseProblem(describe_database_error(url, exc)) from None


def verdict():
    """The status verdict (jobs.health.verdict), the same one ``python -m jobs status`` prints.

    Judged at the current minute, so every page of one minute shares one computation;
    raises DatabaseProblem with a readable message.
    """
    return _cached_verdict(database_url(), utc_now().replace(second=0, microsecond=0))
