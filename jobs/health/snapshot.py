"""Record the database's size, each table's size and row estimate, and the oldest row each
project table keeps, into ``database_health_snapshots`` so the Health page can chart growth.

Only catalog reads and one min() per project table: cheap enough to run hourly.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from core.sql import load_package
from jobs.runtime import recorded_run

HELP = "record the database's size and each table's size, rows and oldest row (for growth charts)"
JOB = "health-snapshot"
SQL = load_package("jobs.health", "snapshot.sql")


@dataclass
class TableHealth:
    total_bytes: int
    row_estimate: int | None
    oldest_row_at: datetime | None = None


@dataclass
class HealthSnapshot:
    id: int
    taken_at: datetime
    database_size_bytes: int
    tables: dict[str, TableHealth] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def take(conn: Connection, *, now: datetime, trigger: str = "cli") -> HealthSnapshot:
    """Measure and store one snapshot inside the caller's transaction."""
    database_size = int(SQL.execute(conn, "database_size").scalar_one())
    tables = {row.name: TableHealth(int(row.total_bytes), row.row_estimate)
              for row in SQL.execute(conn, "table_sizes")}
    for row in SQL.execute(conn, "oldest_rows"):
        if row.name in tables:
            tables[row.name].oldest_row_at = row.oldest_row_at
    snapshot_id = SQL.execute(
        conn, "insert_snapshot", taken_at=now, trigger=trigger, database_size_bytes=database_size,
        tables=json.dumps({name: asdict(t) for name, t in tables.items()}, default=_iso)).scalar_one()
    return HealthSnapshot(snapshot_id, now, database_size, tables)


def run(engine: Engine, *, now: datetime, trigger: str = "cli") -> HealthSnapshot:
    """Take a snapshot as a recorded job run (advisory lock + job_runs row)."""
    with recorded_run(engine, JOB, now=now, trigger=trigger) as job:
        with engine.begin() as conn:
            snapshot = take(conn, now=now, trigger=trigger)
        job.summary = {"snapshot_id": snapshot.id, "database_size_bytes": snapshot.database_size_bytes,
                       "tables": len(snapshot.tables)}
    return snapshot


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


def human_bytes(size: float | None) -> str:
    """1536 -> '1.5 kB' (powers of 1024, as PostgreSQL's pg_size_pretty)."""
    if size is None:
        return "-"
    units = ("bytes", "kB", "MB", "GB", "TB")
    step = 0
    while abs(size) >= 1024 and step < len(units) - 1:
        size /= 1024
        step += 1
    return f"{size:.0f} bytes" if step == 0 else f"{size:.1f} {units[step]}"


# --- command line -----------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the snapshot covers every table of the schema."""


def main(args: argparse.Namespace, ctx) -> int:
    snapshot = run(ctx.jobs_engine(), now=ctx.now(), trigger=ctx.trigger)
    if args.json:
        ctx.print_json(snapshot.as_dict())
        return 0
    ctx.say(f"database size {human_bytes(snapshot.database_size_bytes)}; "
            f"{len(snapshot.tables)} tables recorded (snapshot {snapshot.id})")
    largest = sorted(snapshot.tables.items(), key=lambda item: -item[1].total_bytes)[:5]
    for name, table in largest:
        rows = "not analysed yet" if table.row_estimate is None else f"~{table.row_estimate:,} rows"
        ctx.say(f"  {name}: {human_bytes(table.total_bytes)}, {rows}")
    return 0
