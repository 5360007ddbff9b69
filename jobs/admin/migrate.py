"""Bring the database's schema up to date, recorded in a ledger (``schema_migrations``).

Two kinds of files, in the layout of Flyway's versioned and repeatable migrations:

- numbered migrations (``migrations/reference/*.sql``, then ``migrations/NNNN_*.sql``):
  tables, columns, indexes, constraints, data. Each is applied once, in name order, in its
  own transaction; a file changed after it was applied is reported, never applied again.
- function files (``migrations/functions/*.sql``): every SQL function, view and trigger,
  each in its current form with its settings and grants. After the numbered migrations,
  each file whose checksum differs from the ledger's is applied again (in name order, one
  transaction each), so a function is changed by editing it in place.

``0179_baseline.sql`` squashes the numbered migrations 0001-0175; a database migrated by
them (its ledger holds the last of them) is at the baseline and is recorded so, unchanged.
A second run applies nothing. Concurrent runs queue on an advisory lock.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from core.errors import ConfigError
from core.sql import load_package

HELP = "apply database migrations (running it twice changes nothing)"
SQL = load_package("jobs.admin", "migrate.sql")
# Serialises concurrent migrate runs (two containers starting at once).
MIGRATE_LOCK_KEY = 0x57_4D_4D  # "WMM"
BASELINE = "0179_baseline.sql"
# The last numbered migration the baseline replaces: a ledger that holds it is at the baseline.
BASELINE_REPLACES_UP_TO = "0175_merge_anti_join_guard.sql"
FUNCTIONS = "functions/"
# Function files call one another (an SQL function's body is checked against the catalog when
# it is created); like pg_dump, apply them without that check, so their order does not matter.
FUNCTION_FILE_PROLOGUE = "SET LOCAL check_function_bodies = off;\n"


@dataclass(frozen=True)
class Migration:
    name: str  # "0179_baseline.sql", "reference/0001_registrations.sql", "functions/tracking.sql"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def repeatable(self) -> bool:
        return self.name.startswith(FUNCTIONS)


@dataclass
class MigrateReport:
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    changed_since_applied: list[str] = field(default_factory=list)
    # Set when a database migrated by the numbered migrations the baseline replaces was
    # recorded as being at the baseline.
    baselined: bool = False

    def as_dict(self) -> dict:
        return {
            "applied": self.applied,
            "already_applied": len(self.already_applied),
            "changed_since_applied": self.changed_since_applied,
            "baselined": self.baselined,
        }


def _read_folder(folder, prefix: str) -> list[Migration]:
    return [Migration(prefix + entry.name, entry.read_text(encoding="utf-8"))
            for entry in sorted(folder.iterdir(), key=lambda e: e.name) if entry.name.endswith(".sql")]


def available_migrations(*, with_reference: bool = True) -> list[Migration]:
    """The numbered migrations in the order they apply: the reference schema first (later
    migrations refer to it), then the project's own."""
    root = resources.files("migrations")
    found = _read_folder(root / "reference", "reference/") if with_reference else []
    return found + _read_folder(root, "")


def function_files() -> list[Migration]:
    """The function files, in the order they apply (after every numbered migration)."""
    return _read_folder(resources.files("migrations") / "functions", FUNCTIONS)


def all_files(*, with_reference: bool = True) -> list[Migration]:
    return available_migrations(with_reference=with_reference) + function_files()


def _replaced_by_baseline(name: str) -> bool:
    return re.fullmatch(r"\d{4}_\w+\.sql", name) is not None and name < BASELINE


def _recognise_baseline(conn: Connection, applied: dict[str, str], report: MigrateReport) -> None:
    """Record the baseline as applied on a database the numbered migrations it replaces built."""
    if BASELINE in applied:
        return
    if BASELINE_REPLACES_UP_TO in applied:
        checksum = next(m.checksum for m in available_migrations(with_reference=False) if m.name == BASELINE)
        SQL.execute(conn, "record_applied", name=BASELINE, checksum=checksum)
        applied[BASELINE] = checksum
        report.baselined = True
        return
    older = sorted(name for name in applied if _replaced_by_baseline(name))
    if older:
        raise ConfigError(
            f"this database was migrated up to {older[-1]} by an older release; migrate it with the "
            f"release that has {BASELINE_REPLACES_UP_TO} first, then run this one")


def run(engine: Engine, *, with_reference: bool = True, progress=None) -> MigrateReport:
    """Apply every numbered migration not yet in the ledger, then every changed function file."""
    report = MigrateReport()
    with engine.connect() as lock_conn:
        SQL.execute(lock_conn, "lock", key=MIGRATE_LOCK_KEY)
        try:
            with engine.begin() as conn:
                SQL.execute(conn, "create_ledger")
                applied = dict(SQL.execute(conn, "applied").all())
                _recognise_baseline(conn, applied, report)
            for migration in all_files(with_reference=with_reference):
                recorded = applied.get(migration.name)
                if recorded == migration.checksum or (recorded is not None and not migration.repeatable):
                    report.already_applied.append(migration.name)
                    if recorded != migration.checksum:
                        report.changed_since_applied.append(migration.name)
                    continue
                with engine.begin() as conn:
                    _execute_script(conn, (FUNCTION_FILE_PROLOGUE if migration.repeatable else "") + migration.sql)
                    SQL.execute(conn, "record_applied", name=migration.name, checksum=migration.checksum)
                report.applied.append(migration.name)
                if progress:
                    progress(f"applied {migration.name}")
        finally:
            SQL.execute(lock_conn, "unlock", key=MIGRATE_LOCK_KEY)
            lock_conn.commit()
    return report


def _execute_script(conn: Connection, sql: str) -> None:
    # psycopg runs a multi-statement script in one call when no parameters are bound.
    conn.connection.driver_connection.execute(sql)


# --- export for the Supabase CLI --------------------------------------------------------

# The first line of every exported file: which of our files it holds, at which checksum.
EXPORT_MARK = re.compile(r"^-- webhook-monitor: (?P<name>\S+) sha256:(?P<checksum>[0-9a-f]{64})$", re.M)
EXPORT_NAME = re.compile(r"^(?P<stamp>\d{14})_[\w.-]+\.sql$")


@dataclass
class ExportReport:
    written: list[str] = field(default_factory=list)
    # Numbered migrations whose exported copy differs from the file now (never written again).
    changed_since_exported: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"written": self.written, "changed_since_exported": self.changed_since_exported}


def export_supabase(folder: Path, *, now: datetime, with_reference: bool = True) -> ExportReport:
    """Write what ``folder`` (a ``supabase/migrations``) does not hold yet as timestamped files.

    What is pending is read from the folder itself: each exported file's first line names the
    file of ours it holds and its checksum. A numbered migration is exported once; a function
    file again whenever its checksum differs from its latest export. File names sort in the
    order the files must apply (after every file already there); each file records itself in
    ``schema_migrations``, so ``python -m jobs migrate`` later finds it applied.
    """
    folder.mkdir(parents=True, exist_ok=True)
    exported: dict[str, str] = {}  # our file name -> checksum of its latest export
    last_stamp = None
    for path in sorted(folder.glob("*.sql")):
        match = EXPORT_NAME.match(path.name)
        if match:
            last_stamp = max(last_stamp or "", match["stamp"])
        mark = EXPORT_MARK.search(path.read_text(encoding="utf-8").split("\n", 1)[0])
        if mark:
            exported[mark["name"]] = mark["checksum"]
    report = ExportReport()
    stamp = now.astimezone(timezone.utc).replace(microsecond=0)
    if last_stamp:
        stamp = max(stamp, datetime.strptime(last_stamp, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
                    + timedelta(seconds=1))
    for migration in all_files(with_reference=with_reference):
        previous = exported.get(migration.name)
        if previous == migration.checksum:
            continue
        if previous is not None and not migration.repeatable:
            report.changed_since_exported.append(migration.name)
            continue
        slug = re.sub(r"\W+", "_", migration.name.removesuffix(".sql"))
        name = f"{stamp:%Y%m%d%H%M%S}_webhook_monitor_{slug}.sql"
        (folder / name).write_text(_exported_text(migration), encoding="utf-8")
        report.written.append(name)
        stamp += timedelta(seconds=1)
    return report


def _exported_text(migration: Migration) -> str:
    record = (f"INSERT INTO public.schema_migrations (name, checksum) VALUES ('{migration.name}', "
              f"'{migration.checksum}')\n    ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, "
              "applied_at = now();\n")
    return (f"-- webhook-monitor: {migration.name} sha256:{migration.checksum}\n"
            "-- Written by `python -m jobs migrate --export-supabase`; edit the project's file instead.\n"
            + (FUNCTION_FILE_PROLOGUE if migration.repeatable else "")
            + SQL["create_ledger"].sql.strip() + ";\n\n"
            + migration.sql.rstrip("\n") + "\n\n"
            + "-- The ledger `python -m jobs migrate` keeps, so it finds this file applied.\n" + record)


# --- command line -----------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--without-reference", action="store_true",
        help="skip the reference 'registrations' schema (your app already has that table)",
    )
    parser.add_argument(
        "--export-supabase", metavar="DIR", type=Path,
        help="write the changes DIR (a supabase/migrations folder) does not hold yet as timestamped "
             "files for the Supabase CLI, instead of applying anything",
    )


def main(args: argparse.Namespace, ctx) -> int:
    if args.export_supabase is not None:
        return _export(args, ctx)
    engine = ctx.jobs_engine()
    report = run(engine, with_reference=not args.without_reference,
                 progress=None if args.json else ctx.say)
    if not ctx.settings.DATABASE_URL:
        # The embedded database's dashboard role reads every table, new ones included.
        from core.embedded import ensure_dashboard_role

        ensure_dashboard_role(engine.url.render_as_string(hide_password=False))
    if args.json:
        ctx.print_json(report.as_dict())
        return 0
    if report.baselined:
        ctx.say(f"recorded {BASELINE} as applied: the database already has the schema of the "
                "migrations it replaces")
    for name in report.changed_since_applied:
        ctx.warn(f"{name} changed after it was applied; it is not applied again "
                 "(add a new migration instead)")
    if report.applied:
        ctx.say(f"applied {len(report.applied)} file(s); "
                f"{len(report.already_applied)} were already applied")
    else:
        ctx.say(f"nothing to do: all {len(report.already_applied)} files already applied")
    return 0


def _export(args: argparse.Namespace, ctx) -> int:
    folder = args.export_supabase
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--export-supabase {folder}: not a folder")
    report = export_supabase(folder, now=datetime.now(timezone.utc), with_reference=not args.without_reference)
    if args.json:
        ctx.print_json(report.as_dict())
        return 0
    for name in report.changed_since_exported:
        ctx.warn(f"{name} changed after it was exported; it is not exported again")
    for name in report.written:
        ctx.say(f"wrote {folder / name}")
    if not report.written:
        ctx.say(f"nothing to export: {folder} holds every change")
    return 0
