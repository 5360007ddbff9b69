"""SQL kept beside a job in ``jobs/<name>.sql``, as ``-- name:`` blocks like ``queries/``."""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa

from queries import parse_queries


def load(filename: str) -> dict[str, sa.TextClause]:
    """Every named statement of ``jobs/<filename>``; fails with file and line when malformed."""
    text = (resources.files("jobs") / filename).read_text(encoding="utf-8")
    return {query.name: query.statement for query in parse_queries(text, f"jobs/{filename}")}
