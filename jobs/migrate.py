"""Apply the .sql migrations in order, each in its own transaction, recorded in a ledger.

A second run applies nothing. A file changed after it was applied is reported, never
re-applied behind the user's back.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from importlib import resources

from sqlalchemy.engine import Connection, Engine

from core.sql import load_package

HELP = "apply database migrations (running it twice changes nothing)"
SQL = load_package("jobs", "migrate.sql")
# Serialises concurrent migrate runs (two containers starting at once).
MIGRATE_LOCK_KEY = 0x57_4D_4D  # "WMM"


@dataclass(frozen=True)
class Migration:
    name: str  # e.g. "0001_webhook_events.sql" or "reference/0001_registrations.sql"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass
class MigrateReport:
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    changed_since_applied: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "applied": self.applied,
            "already_applied": len(self.already_applied),
            "changed_since_applied": self.changed_since_applied,
        }


def available_migrations(*, with_reference: bool = True) -> list[Migration]:
    """Reference schema first (later migrations may refer to it), then the project's own."""
    root = resources.files("migrations")
    found: list[Migration] = []
    folders = ([("reference/", root / "reference")] if with_reference else []) + [("", root)]
    for prefix, folder in folders:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql"):
                found.append(Migration(prefix + entry.name, entry.read_text(encoding="utf-8")))
    return found


def run(engine: Engine, *, with_reference: bool = True, progress=None) -> MigrateReport:
    """Apply every migration not yet in the ledger."""
    report = MigrateReport()
    with engine.connect() as lock_conn:
        SQL.execute(lock_conn, "lock", key=MIGRATE_LOCK_KEY)
        try:
            with engine.begin() as conn:
                SQL.execute(conn, "create_ledger")
                applied = dict(SQL.execute(conn, "applied").all())
            for migration in available_migrations(with_reference=with_reference):
                if migration.name in applied:
                    report.already_applied.append(migration.name)
                    if applied[migration.name] != migration.checksum:
                        report.changed_since_applied.append(migration.name)
                    continue
                with engine.begin() as conn:
                    _execute_script(conn, migration.sql)
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


# --- command line -----------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--without-reference", action="store_true",
        help="skip the reference 'registrations' schema (your app already has that table)",
    )


def main(args: argparse.Namespace, ctx) -> int:
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
    for name in report.changed_since_applied:
        ctx.warn(f"{name} changed after it was applied; it is not applied again "
                 "(add a new migration instead)")
    if report.applied:
        ctx.say(f"applied {len(report.applied)} migration(s); "
                f"{len(report.already_applied)} were already applied")
    else:
        ctx.say(f"nothing to do: all {len(report.already_applied)} migrations already applied")
    return 0
