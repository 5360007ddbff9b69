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


def test_blocks_become_named_queries_with_docstrings():
    text = "-- name: first\n-- Counts things.\nSELECT 1\n\n-- name: second\nSELECT :x;\n"
    first, second = parse(text, "f.sql")
    assert (first.name, first.doc, first.sql, first.source) == ("first", "Counts things.", "SELECT 1", "f.sql:1")
    assert (second.name, second.sql, second.source) == ("second", "SELECT :x", "f.sql:5")


def test_empty_query_is_an_error_naming_file_and_line():
    with pytest.raises(SqlFileError, match=r"f.sql:3: query 'b' is empty"):
        parse("-- name: a\nSELECT 1\n-- name: b\n-- only a comment\n", "f.sql")


def test_sql_before_first_name_is_an_error():
    with pytest.raises(SqlFileError, match=r"f.sql:1"):
        parse("SELECT 1\n-- name: a\nSELECT 2\n", "f.sql")


def test_duplicate_names_across_a_packages_files_are_an_error(tmp_path, monkeypatch):
    import sys

    package = tmp_path / "dupqueries"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.sql").write_text("-- name: same\nSELECT 1\n")
    (package / "b.sql").write_text("-- name: same\nSELECT 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from core.sql import load_package

    with pytest.raises(SqlFileError, match=r"dupqueries/b.sql:1: duplicate query name 'same' "
                                           r"\(first defined at dupqueries/a.sql:1\)"):
        load_package("dupqueries")
    sys.modules.pop("dupqueries", None)


def test_the_dashboards_queries_load_through_this_loader():
    from queries import QUERIES

    assert isinstance(QUERIES, Statements) and "events_page" in QUERIES
