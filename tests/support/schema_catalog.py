"""A database's schema as comparable data: the catalog (tests/support/schema_catalog.sql) and
``pg_dump --schema-only`` from pgserver's own binaries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.sql import load_package

SQL = load_package("tests.support", "schema_catalog.sql")
PG_DUMP = Path(__import__("pgserver").__file__).parent / "pginstall" / "bin" / "pg_dump"
PARTS = ("functions", "columns", "relations", "indexes", "constraints", "triggers", "policies")


def schema_catalog(url: str) -> dict[str, dict]:
    """Per kind of object, its rows keyed by name: equal dicts mean equal schemas."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = {}
            for part in PARTS:
                rows = [dict(row._mapping) for row in SQL.execute(conn, part)]
                key = ("signature",) if part == "functions" else \
                      ("relation", "position") if part == "columns" else \
                      ("name",) if part == "indexes" else \
                      ("relation",) if part == "relations" else ("relation", "name")
                found[part] = {tuple(row[k] for k in key) if len(key) > 1 else row[key[0]]: row for row in rows}
            return found
    finally:
        engine.dispose()


def schema_dump(url: str) -> str:
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    out = subprocess.run([str(PG_DUMP), "--schema-only", "--no-owner", "--dbname", libpq_url],
                         check=True, capture_output=True, text=True).stdout
    # pg_dump 16 adds a random \restrict token on some builds; it is not schema.
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))
