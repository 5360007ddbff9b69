"""Deprecated: load a job's SQL with ``core.sql.load_package("jobs", "<name>.sql")``.

Kept only until the last modules that index statements by name (``SQL["x"]``) move to
``core.sql``'s checked ``SQL.execute(conn, "x", ...)``; then this module goes.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.sql import load_package


def load(filename: str) -> dict[str, sa.TextClause]:
    """Every named statement of ``jobs/<filename>``; fails with file and line when malformed."""
    return {name: query.statement for name, query in load_package("jobs", filename).items()}
