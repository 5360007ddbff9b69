"""Named SQL statements kept in ``.sql`` files, the project's only way to hold SQL.

A file holds blocks that each start with ``-- name: statement_name``; the comment lines right
under the name are the statement's docstring; parameters are ``:named`` and always bound,
never formatted in. Write ``CAST(:p AS type)`` rather than ``:p::type`` (the latter is not
read as a parameter). Loading fails with file and line on SQL before the first name, an
empty statement, or a name used twice (in one file or across a package's files). Running a
statement fails at once when the parameters given are not exactly the ones it names, so a
misspelt parameter is an error instead of being silently ignored.

    from core.sql import load_package
    SQL = load_package("jobs.reconcile", "reconciler.sql")
    row = SQL.one(conn, "registration_for_update", registration_id=registration_id)

No pandas here: ``queries`` adds DataFrames for the dashboard on top of this module, and the
receiver, the tracker and the jobs load their SQL without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, Iterable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$")


class SqlFileError(ValueError):
    """A .sql file of named statements is malformed (the message names the file and line)."""


class SqlParameterError(TypeError):
    """A statement was run with parameters other than exactly the ones it names."""


@dataclass(frozen=True)
class Query:
    """One named statement: its SQL, docstring and where it was defined (``file.sql:line``)."""

    name: str
    sql: str
    doc: str
    source: str

    @cached_property
    def statement(self) -> sa.TextClause:
        return sa.text(self.sql)

    @cached_property
    def parameters(self) -> frozenset[str]:
        """The ``:named`` parameters the statement binds."""
        return frozenset(self.statement._bindparams)

    def check(self, params: Mapping[str, Any]) -> None:
        """Raise SqlParameterError unless ``params`` names exactly this statement's parameters."""
        given = set(params)
        if given != self.parameters:
            missing = sorted(self.parameters - given)
            extra = sorted(given - self.parameters)
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("unexpected " + ", ".join(extra))
            raise SqlParameterError(f"{self.name} ({self.source}): {'; '.join(parts)}")


def parse(text: str, filename: str) -> list[Query]:
    """Split one file's text into its named statements, in order."""
    found: list[Query] = []
    seen: dict[str, str] = {}
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is None:
            return
        sql = "\n".join(current["sql"]).strip().rstrip(";").strip()
        source = f"{filename}:{current['line']}"
        if not sql:
            raise SqlFileError(f"{source}: query '{current['name']}' is empty")
        if current["name"] in seen:
            raise SqlFileError(f"{source}: duplicate query name '{current['name']}' "
                               f"(first defined at {seen[current['name']]})")
        seen[current["name"]] = source
        found.append(Query(current["name"], sql, "\n".join(current["doc"]).strip(), source))

    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match:
            close()
            current = {"name": match["name"], "line": lineno, "doc": [], "sql": []}
        elif current is None:
            if line.strip() and not line.strip().startswith("--"):
                raise SqlFileError(f"{filename}:{lineno}: SQL before the first '-- name:' line")
        elif not current["sql"] and line.strip().startswith("--"):
            current["doc"].append(line.strip()[2:].strip())
        else:
            current["sql"].append(line)
    close()
    return found


@dataclass
class Statements(Mapping[str, Query]):
    """Named statements by name, with helpers that check parameters before running them."""

    queries: dict[str, Query] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Query:
        return self.queries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def add(self, queries: Iterable[Query]) -> None:
        for query in queries:
            if query.name in self.queries:
                raise SqlFileError(f"{query.source}: duplicate query name '{query.name}' "
                                   f"(first defined at {self.queries[query.name].source})")
            self.queries[query.name] = query

    def execute(self, conn: Connection, name: str, /, **params: Any) -> sa.CursorResult:
        """Run a statement on an open connection with exactly its parameters."""
        query = self.queries[name]
        query.check(params)
        return conn.execute(query.statement, params)

    def one(self, bind: Engine | Connection, name: str, /, **params: Any) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        with _connection(bind) as conn:
            row = self.execute(conn, name, **params).mappings().first()
            return dict(row) if row is not None else None

    def all(self, bind: Engine | Connection, name: str, /, **params: Any) -> list[dict[str, Any]]:
        """Every row as a dict."""
        with _connection(bind) as conn:
            return [dict(row) for row in self.execute(conn, name, **params).mappings()]

    def scalar(self, bind: Engine | Connection, name: str, /, **params: Any) -> Any:
        """The first column of the first row, or None."""
        with _connection(bind) as conn:
            return self.execute(conn, name, **params).scalar()


class _connection:
    """An engine opens (and closes) a connection; a connection is used as it is."""

    def __init__(self, bind: Engine | Connection):
        self.bind = bind
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        if isinstance(self.bind, Engine):
            self.conn = self.bind.connect()
            return self.conn
        return self.bind

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()


def load_package(package: str, *filenames: str) -> Statements:
    """The named statements of ``package``'s .sql files (all of them, or the ones named)."""
    root = resources.files(package)
    entries = ([root / name for name in filenames] if filenames
               else sorted((e for e in root.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name))
    statements = Statements()
    for entry in entries:
        statements.add(parse(entry.read_text(encoding="utf-8"), f"{package}/{entry.name}"))
    return statements
