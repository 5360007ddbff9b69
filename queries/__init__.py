"""Every SQL statement the dashboard runs, loaded from ``queries/*.sql`` through ``core.sql``
(the project's one loader: named, documented blocks; parameters checked at call time).

    from queries import QUERIES, fetch_df
    df = fetch_df(engine, "events_by_bucket", start=..., end=..., bucket="hour")

This package adds only what the dashboard needs on top: rows as pandas DataFrames.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from core.sql import Query, SqlFileError, Statements, load_package

__all__ = ["QUERIES", "Query", "SqlFileError", "fetch_df", "fetch_one"]

QUERIES: Statements = load_package("queries")


def fetch_df(bind: Engine | Connection, name: str, /, **params: Any) -> pd.DataFrame:
    """Run a named query with exactly its parameters and return its rows as a DataFrame."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return _frame(QUERIES.execute(conn, name, **params))
    return _frame(QUERIES.execute(bind, name, **params))


def fetch_one(bind: Engine | Connection, name: str, /, **params: Any) -> Mapping[str, Any] | None:
    """The first row of a named query as a dict, or None when it returns no row."""
    return QUERIES.one(bind, name, **params)


def _frame(result) -> pd.DataFrame:
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
