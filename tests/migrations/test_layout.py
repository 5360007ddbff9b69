"""One schema source: the baseline plus function files build the schema the numbered
migrations 0001-0175 built (kept in tests/data/legacy_migrations/), a database built by those
is brought to the new layout by the same ``migrate``, and no function is defined twice."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.errors import ConfigError
from devharness import ThrowawayDatabase
from jobs.admin import migrate
from tests.support.schema_catalog import schema_catalog, schema_dump

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_migrations"
FUNCTION_DEFINITION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:public\.)?(\w+)", re.I)
# Dollar-quoted bodies and comments: a function named inside them is not defined there.
NOT_CODE = re.compile(r"\$(\w*)\$.*?\$\1\$|--[^\n]*", re.S)


def defined_functions(migration: migrate.Migration) -> list[str]:
    return FUNCTION_DEFINITION.findall(NOT_CODE.sub("", migration.sql))


def legacy_files() -> list[migrate.Migration]:
    return [migrate.Migration(path.name, path.read_text(encoding="utf-8")) for path in sorted(LEGACY.glob("*.sql"))]


def apply_legacy(engine, files=None) -> None:
    """Build a database as the release before the baseline did: reference schema, then 0001-0175."""
    with engine.begin() as conn:
        migrate.SQL.execute(conn, "create_ledger")
    reference = [m for m in migrate.available_migrations() if m.name.startswith("reference/")]
    for migration in reference + (legacy_files() if files is None else files):
        with engine.begin() as conn:
            migrate._execute_script(conn, migration.sql)
            migrate.SQL.execute(conn, "record_applied", name=migration.name, checksum=migration.checksum)


@pytest.fixture
def scratch(database_url):
    """A factory of empty databases on the test server, dropped at the end."""
    opened = []

    def make(prefix="webhook_monitor_layout"):
        database = ThrowawayDatabase(server_url=database_url, migrate=False, prefix=prefix).__enter__()
        engine = sa.create_engine(database.url, poolclass=NullPool)
        opened.append((database, engine))
        return database.url, engine

    yield make
    for database, engine in opened:
        engine.dispose()
        database.close()


def test_no_function_is_defined_in_two_places():
    definitions: dict[str, list[str]] = {}
    for migration in migrate.all_files():
        for name in defined_functions(migration):
            definitions.setdefault(name, []).append(migration.name)
    twice = {name: files for name, files in definitions.items() if len(files) > 1}
    assert twice == {}, f"defined more than once: {twice}"
    in_function_files = {n for m in migrate.function_files() for n in defined_functions(m)}
    in_numbered = {n for m in migrate.available_migrations() for n in defined_functions(m)}
    assert in_function_files and not (in_function_files & in_numbered)


def test_the_duplicate_check_finds_a_restated_function():
    """The legacy files restate webhook_event_begin three times: the parser sees that."""
    found = [m.name for m in legacy_files() if "webhook_event_begin" in defined_functions(m)]
    assert found == ["0010_tracking.sql", "0060_error_policy.sql", "0120_attempt_liveness.sql"]


def test_every_function_of_the_schema_comes_from_exactly_one_file(engine):
    """Over the catalog, not a list: each function in public is defined by one file, and each
    function a file defines exists."""
    with engine.connect() as conn:
        in_database = set(conn.execute(sa.text(
            "SELECT proname FROM pg_proc p WHERE pronamespace = 'public'::regnamespace AND NOT EXISTS "
            "(SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')")).scalars())
    in_files = {n for m in migrate.all_files() for n in defined_functions(m)}
    assert in_database == in_files


def after_baseline() -> list[str]:
    """The numbered migrations written since the baseline, in the order they apply."""
    return [m.name for m in migrate.available_migrations(with_reference=False) if m.name > migrate.BASELINE]


def test_a_database_built_by_the_old_migrations_is_brought_to_the_same_schema(scratch):
    fresh_url, fresh = scratch()
    first = migrate.run(fresh)
    assert migrate.BASELINE in first.applied and not first.baselined

    old_url, old = scratch()
    apply_legacy(old)
    before = schema_catalog(old_url)
    upgrade = migrate.run(old)
    assert upgrade.baselined
    # Nothing the baseline replaces runs again: only what came after it, and the function files.
    assert upgrade.applied == after_baseline() + [m.name for m in migrate.function_files()]

    assert schema_catalog(old_url) == schema_catalog(fresh_url)
    assert schema_dump(old_url) == schema_dump(fresh_url)

    again = migrate.run(old)
    assert again.applied == [] and not again.baselined

    # The baseline and the function files alone rebuild the old schema: every table, index,
    # constraint, trigger and policy as it was (but for who may call the functions and read the
    # policy view), and every function the old files defined (with the privileges helper added
    # since). The functions' bodies are the function files' to change since (the login
    # throttle's were), so only their list is compared.
    squashed_url, squashed = scratch()
    with squashed.begin() as conn:
        migrate.SQL.execute(conn, "create_ledger")
    for migration in [m for m in migrate.available_migrations() if m.name.startswith("reference/")
                      or m.name == migrate.BASELINE] + migrate.function_files():
        with squashed.begin() as conn:
            migrate._execute_script(conn, (migrate.FUNCTION_FILE_PROLOGUE if migration.repeatable else "")
                                    + migration.sql)
    without_grants = lambda catalog: {part: {key: {**row, "acl": None} if "acl" in row else row
                                             for key, row in rows.items()} for part, rows in catalog.items()}
    rebuilt, old_schema = without_grants(schema_catalog(squashed_url)), without_grants(before)
    added = {"webhook_monitor_callable_by(regprocedure[],boolean)",
             # Immutable UTC rounding for the window functions' bounds (event_rollups.sql).
             "webhook_utc_hour(timestamp with time zone)", "webhook_utc_day(timestamp with time zone)",
             # One error group's failing events, read by two queries (error_rollups.sql).
             "webhook_error_group_failing(text,timestamp with time zone,timestamp with time zone)"}
    assert set(rebuilt.pop("functions")) - added == set(old_schema.pop("functions"))
    assert rebuilt == old_schema


def test_a_database_stopped_before_0175_is_refused_with_one_line(scratch):
    url, engine = scratch()
    apply_legacy(engine, [m for m in legacy_files() if m.name < "0150"])
    with pytest.raises(ConfigError, match="0140_job_run_liveness.sql by an older release"):
        migrate.run(engine)
    result = subprocess.run([sys.executable, "-m", "jobs", "migrate"], capture_output=True, text=True,
                            env={**__import__("os").environ, "DATABASE_URL": url})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_changed_function_file_is_applied_again_and_only_it(scratch):
    url, engine = scratch()
    migrate.run(engine)
    with engine.begin() as conn:
        # As if search.sql had been edited since: the ledger holds another checksum, and the
        # function in the database is not the file's.
        conn.execute(sa.text("UPDATE schema_migrations SET checksum = 'old' WHERE name = 'functions/search.sql'"))
        conn.execute(sa.text("CREATE OR REPLACE FUNCTION public.webhook_search_prefix(p_search text) "
                             "RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'stale' $$"))
    report = migrate.run(engine)
    assert report.applied == ["functions/search.sql"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT public.webhook_search_prefix('Evt_1')")).scalar() == "evt\\_1%"
    assert migrate.run(engine).applied == []


def test_concurrent_runs_apply_each_file_once(scratch):
    url, engine = scratch()
    reports, errors = [], []

    def one_run():
        own = sa.create_engine(url, poolclass=NullPool)
        try:
            reports.append(migrate.run(own))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=one_run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    applied = sorted(name for report in reports for name in report.applied)
    assert applied == sorted(m.name for m in migrate.all_files())


def test_function_files_ship_with_the_package():
    """package-data "*.sql" of every package: functions/ is a package, so its files install."""
    names = [m.name for m in migrate.function_files()]
    assert "functions/tracking.sql" in names and "functions/event_rollups.sql" in names
    assert (Path(migrate.__file__).resolve().parents[2] / "migrations" / "functions" / "__init__.py").exists()
