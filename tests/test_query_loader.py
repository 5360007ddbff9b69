import pytest

from queries import QUERIES, QueryFileError, parse_queries


def test_blocks_become_named_queries_with_docstrings():
    text = "-- name: first\n-- Counts things.\nSELECT 1\n\n-- name: second\nSELECT :x;\n"
    first, second = parse_queries(text, "f.sql")
    assert (first.name, first.doc, first.sql, first.source) == ("first", "Counts things.", "SELECT 1", "f.sql:1")
    assert (second.name, second.sql, second.source) == ("second", "SELECT :x", "f.sql:5")


def test_empty_query_is_an_error_naming_file_and_line():
    with pytest.raises(QueryFileError, match=r"f.sql:3: query 'b' is empty"):
        parse_queries("-- name: a\nSELECT 1\n-- name: b\n-- only a comment\n", "f.sql")


def test_sql_before_first_name_is_an_error():
    with pytest.raises(QueryFileError, match=r"f.sql:1"):
        parse_queries("SELECT 1\n-- name: a\nSELECT 2\n", "f.sql")


def test_duplicate_names_are_an_error(tmp_path, monkeypatch):
    import sys

    package = tmp_path / "dupqueries"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.sql").write_text("-- name: same\nSELECT 1\n")
    (package / "b.sql").write_text("-- name: same\nSELECT 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from queries import load_queries

    with pytest.raises(QueryFileError, match=r"b.sql:1: duplicate query name 'same' \(first defined at a.sql:1\)"):
        load_queries("dupqueries")
    sys.modules.pop("dupqueries", None)


def test_every_query_is_documented_and_uses_only_named_parameters():
    from queries import load_queries

    # The dashboard's queries and the webhook tracking's (tracking/*.sql, same format).
    for query in [*QUERIES.values(), *load_queries("tracking").values()]:
        assert query.doc, f"{query.source}: add a comment under the name saying what it returns"
        assert "%s" not in query.sql and "%(" not in query.sql, query.source
