"""Every SQL statement the dashboard runs, loaded from ``queries/*.sql``.

A file holds blocks that each start with ``-- name: query_name``; the comment lines right
under the name are the query's docstring; parameters are ``:named`` and always bound, never
formatted in. Write ``CAST(:p AS type)`` rather than ``:p::type`` (the latter is not read as
a parameter). The loader fails loudly, with file and line, on an empty or duplicate query.

    from queries import QUERIES, fetch_df
    df = fetch_df(engine, "events_by_bucket", start=..., end=..., bucket="hour")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$")


class QueryFileError(ValueError):
    """A .sql file of queries is malformed (message names the file and line)."""


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    doc: str
    source: str  # "file.sql:line"

    @property
    def statement(self) -> sa.TextClause:
        return sa.text(self.sql)


def parse_queries(text: str, filename: str) -> list[Query]:
    """Split one file's text into its named queries."""
    found: list[Query] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is None:
            return
        sql = "\n".join(current["sql"]).strip().rstrip(";").strip()
        if not sql:
            raise QueryFileError(f"{filename}:{current['line']}: query '{current['name']}' is empty")
        found.append(Query(current["name"], sql, "\n".join(current["doc"]).strip(),
                           f"{filename}:{current['line']}"))

    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match:
            close()
            current = {"name": match["name"], "line": lineno, "doc": [], "sql": []}
        elif current is None:
            if line.strip() and not line.strip().startswith("--"):
                raise QueryFileError(f"{filename}:{lineno}: SQL before the first '-- name:' line")
        elif not current["sql"] and line.strip().startswith("--"):
            current["doc"].append(line.strip()[2:].strip())
        else:
            current["sql"].append(line)
    close()
    return found


def load_queries(package: str = "queries") -> dict[str, Query]:
    """Every query of every .sql file in the package, by name; duplicates are an error."""
    queries: dict[str, Query] = {}
    for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for query in parse_queries(entry.read_text(encoding="utf-8"), entry.name):
            if query.name in queries:
                raise QueryFileError(f"{query.source}: duplicate query name '{query.name}' "
                                     f"(first defined at {queries[query.name].source})")
            queries[query.name] = query
    return queries


QUERIES: dict[str, Query] = load_queries()


def fetch_df(bind: Engine | Connection, name: str, **params: Any) -> pd.DataFrame:
    """Run a named query with bound parameters and return its rows as a DataFrame."""
    query = QUERIES[name]
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return _frame(conn.execute(query.statement, params))
    return _frame(bind.execute(query.statement, params))


def fetch_one(bind: Engine | Connection, name: str, **params: Any) -> Mapping[str, Any] | None:
    """The first row of a named query as a mapping, or None when it returns no row."""
    query = QUERIES[name]
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            row = conn.execute(query.statement, params).mappings().first()
    else:
        row = bind.execute(query.statement, params).mappings().first()
    return dict(row) if row is not None else None


def _frame(result) -> pd.DataFrame:
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
