"""What the benches that time queries share: the database they read (one loaded before, or a
throwaway one loaded with demo history in this process) and the table of medians they print."""

from __future__ import annotations

import argparse
import math
from datetime import datetime

import sqlalchemy as sa


def add_database_options(parser: argparse.ArgumentParser, *, runs_help: str) -> None:
    """``--database-url URL`` or ``--events N`` (one of them), ``--days`` and ``--runs``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--database-url", metavar="URL", help="time a migrated, loaded database as it is")
    source.add_argument("--events", type=int, metavar="N", help="load N demo events into a throwaway database")
    parser.add_argument("--days", type=int, default=30, help="days of history with --events (default %(default)s)")
    parser.add_argument("--runs", type=int, default=9, help=runs_help)


def load(url: str, events: int, *, days: int, now: datetime) -> int:
    """Migrate the database at ``url``, load ``events`` demo events over the ``days`` days
    ending ``now`` (``jobs.admin.demo_data``), then VACUUM ANALYZE, the steady state autovacuum
    keeps; returns the events loaded."""
    from jobs.admin import demo_data, migrate

    engine = sa.create_engine(url, hide_parameters=True)
    try:
        migrate.run(engine)
        report = demo_data.run(engine, now=now, days=days, events_per_day=math.ceil(events / days),
                               trigger="cli", progress=lambda m: print(f"    {m}", flush=True))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return report.events


def print_medians(first_column: str, size: int, timings: dict[str, float]) -> None:
    """The table: a row per label, its median in milliseconds under the database's size."""
    width = max(len(label) for label in timings)
    print(f"\n{first_column:<{width}}  {f'{size:,} ev (ms)':>16}")
    for label, value in timings.items():
        print(f"{label:<{width}}  {value:>16.1f}")
