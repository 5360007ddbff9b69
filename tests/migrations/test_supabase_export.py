"""`python -m jobs migrate --export-supabase DIR`: the files the Supabase CLI applies (in name
order, each in one transaction, as `supabase db push` does) give the schema `jobs migrate`
gives on the same kind of database, and a second export writes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from devharness.supabase import SupabaseServer
from jobs.admin import migrate
from tests.support.schema_catalog import schema_catalog, schema_dump

REPO = Path(__file__).resolve().parents[2]
# The Supabase CLI pinned in tests/supabase_cli (make test installs it), or another one named by SUPABASE_CLI.
SUPABASE_CLI = os.environ.get("SUPABASE_CLI") or shutil.which(
    "supabase", path=str(REPO / "tests" / "supabase_cli" / "node_modules" / ".bin"))


def cli(*args: str, url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"DATABASE_URL": url} if url else {})}
    result = subprocess.run([sys.executable, "-m", "jobs", "migrate", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result


def apply_as_supabase_cli(url: str, folder) -> list[str]:
    """Each file in name order, each in one transaction, as `postgres`."""
    engine = sa.create_engine(url, poolclass=NullPool)
    applied = []
    try:
        for path in sorted(folder.glob("*.sql")):
            with engine.begin() as conn:
                migrate._execute_script(conn, path.read_text(encoding="utf-8"))
            applied.append(path.name)
    finally:
        engine.dispose()
    return applied


@pytest.fixture(scope="module")
def supabase():
    with SupabaseServer() as server:
        yield server


def test_exported_files_build_the_schema_migrate_builds(supabase, tmp_path):
    folder = tmp_path / "supabase" / "migrations"
    first = cli("--export-supabase", str(folder))
    written = sorted(path.name for path in folder.glob("*.sql"))
    assert len(written) == len(migrate.all_files())
    assert [line.removeprefix("wrote ").rsplit("/", 1)[-1] for line in first.stdout.splitlines()] == written
    # Name order is apply order: the reference schema, the baseline, then the function files.
    assert written[0].endswith("_webhook_monitor_reference_0001_registrations.sql")
    assert written[1].endswith("_webhook_monitor_0179_baseline.sql")

    assert "nothing to export" in cli("--export-supabase", str(folder)).stdout
    assert sorted(path.name for path in folder.glob("*.sql")) == written

    by_cli = supabase.project_database()
    assert apply_as_supabase_cli(by_cli, folder) == written
    by_migrate = supabase.project_database()
    cli(url=by_migrate)
    assert schema_catalog(by_cli) == schema_catalog(by_migrate)
    assert schema_dump(by_cli) == schema_dump(by_migrate)
    # The files recorded themselves in migrate's ledger: the two ways can be mixed later.
    assert "nothing to do" in cli(url=by_cli).stdout


def test_a_changed_function_file_is_exported_again_after_the_others(tmp_path):
    folder = tmp_path / "migrations"
    now = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    first = migrate.export_supabase(folder, now=now)
    # As if search.sql had changed since that export: its export holds another checksum.
    exported = next(folder.glob("*_webhook_monitor_functions_search.sql"))
    text = exported.read_text(encoding="utf-8")
    checksum = next(m.checksum for m in migrate.function_files() if m.name == "functions/search.sql")
    exported.write_text(text.replace(checksum, "0" * 64, 1), encoding="utf-8")

    # An earlier clock (another machine) still writes after every file already there.
    second = migrate.export_supabase(folder, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert len(second.written) == 1 and second.written[0].endswith("_webhook_monitor_functions_search.sql")
    assert second.written[0] > max(first.written)
    assert migrate.export_supabase(folder, now=now).written == []


def test_an_edited_numbered_export_is_reported_not_rewritten(tmp_path):
    folder = tmp_path / "migrations"
    migrate.export_supabase(folder, now=datetime(2026, 12, 7, tzinfo=timezone.utc))
    baseline = next(folder.glob("*_webhook_monitor_0179_baseline.sql"))
    checksum = next(m.checksum for m in migrate.available_migrations() if m.name == migrate.BASELINE)
    baseline.write_text(baseline.read_text(encoding="utf-8").replace(checksum, "1" * 64, 1), encoding="utf-8")
    report = migrate.export_supabase(folder, now=datetime(2026, 12, 8, tzinfo=timezone.utc))
    assert report.written == [] and report.changed_since_exported == [migrate.BASELINE]


def test_without_reference_leaves_the_apps_registrations_table_out(tmp_path):
    report = migrate.export_supabase(tmp_path, now=datetime(2026, 12, 7, tzinfo=timezone.utc), with_reference=False)
    assert not any("reference" in name for name in report.written)
    assert len(report.written) == len(migrate.all_files(with_reference=False))


@pytest.mark.skipif(not SUPABASE_CLI, reason="no Supabase CLI: make test installs the pinned one in tests/supabase_cli")
def test_supabase_db_push_applies_the_exported_files(supabase, tmp_path):
    """The real CLI, as a team would run it, without Docker: `supabase db push --db-url`."""
    subprocess.run([SUPABASE_CLI, "init", "--yes"], cwd=tmp_path, check=True, capture_output=True, text=True)
    migrate.export_supabase(tmp_path / "supabase" / "migrations", now=datetime.now(timezone.utc))
    by_cli = supabase.project_database()
    with supabase.tcp_url(by_cli) as url:
        push = subprocess.run([SUPABASE_CLI, "db", "push", "--db-url", url, "--yes"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    assert push.returncode == 0, push.stderr
    assert (push.stdout + push.stderr).count("Applying migration") == len(migrate.all_files())
    by_migrate = supabase.project_database()
    cli(url=by_migrate)
    assert schema_catalog(by_cli) == schema_catalog(by_migrate)
    assert "nothing to do" in cli(url=by_cli).stdout
