"""The one SQL loader: named blocks, file-and-line errors, exact parameters at call time."""

import pytest
import sqlalchemy as sa

from core.sql import SqlFileError, SqlParameterError, Statements, parse


def test_duplicate_name_within_one_file_is_an_error_naming_both_lines():
    with pytest.raises(SqlFileError, match=r"f.sql:3: duplicate query name 'a' \(first defined at f.sql:1\)"):
        parse("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "f.sql")


def test_parameters_are_read_from_the_sql():
    (query,) = parse("-- name: q\n-- Doc.\nSELECT CAST(:x AS int) + :y, '10:30'::text", "f.sql")
    assert query.parameters == {"x", "y"}
    assert query.doc == "Doc."


def test_a_misspelt_or_missing_parameter_fails_before_reaching_the_database(engine):
    statements = Statements()
    statements.add(parse("-- name: add\n-- Adds.\nSELECT CAST(:a AS int) + CAST(:b AS int)", "f.sql"))
    assert statements.scalar(engine, "add", a=1, b=2) == 3
    with pytest.raises(SqlParameterError, match=r"add \(f.sql:1\): missing b; unexpected bb"):
        statements.scalar(engine, "add", a=1, bb=2)
    with engine.connect() as conn:
        with pytest.raises(SqlParameterError, match="missing a, b"):
            statements.execute(conn, "add")
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
