"""Median time of every dashboard query (``queries.QUERIES``) at two sizes, and the ratio.

    python bench/queries_bench.py --sizes 2000,20000       # quick check (under a minute)
    python bench/queries_bench.py                           # 10,000 and 1,000,000 events
    python bench/queries_bench.py --database-url URL --window-days 30   # a database loaded before

For each size: a throwaway database (an embedded PostgreSQL in a temporary folder, or a
scratch database on DATABASE_URL's server, dropped afterwards), migrated, filled with
``--days`` days of demo history (``jobs.admin.demo_data``) ending now, then VACUUM ANALYZE (the
steady state autovacuum keeps). Every query runs through the dashboard's own read-only
engine (``fetch_df``, as the pages call it) once to warm up, then ``--runs`` times; the
table shows the median milliseconds per size and the ratio of the largest size to the
smallest. Queries read the ``--window-days`` window ending now.

With ``--database-url`` the bench loads nothing and drops nothing: it times the queries on
that database as it is (migrated and loaded before, e.g. one 10M-event load built once with
``python -m jobs demo-data``), printing how many events it holds; ``--sizes`` and ``--days``
do not apply. The URL of an embedded database folder is
``python -c "from pathlib import Path; from core.embedded import embedded_url; print(embedded_url(Path('DIR')))"``.

Parameters are filled by name from ``PARAMETERS`` (and ``VARIANTS`` adds a second line for
queries whose cost depends on a filter). A query with a parameter the bench does not know
stops it before anything is loaded, naming the query and the parameter.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import psycopg
import sqlalchemy as sa

from core.db import create_dashboard_engine
from core.settings import get_settings
from devharness import ThrowawayDatabase, events_held, median_ms
from jobs.admin import demo_data, migrate
from queries import QUERIES, Query, fetch_df

DASHBOARD_TIMEOUT_MS = get_settings().MONITOR_STATEMENT_TIMEOUT_MS


class Sample:
    """What parameter values are computed from: the window, and ids found in the data."""

    def __init__(self, conn, *, now: datetime, window_days: int):
        self.now = now
        self.window = timedelta(days=window_days)
        self.failed_event_id = conn.execute(sa.text(
            "SELECT stripe_event_id FROM webhook_events WHERE processing_status = 'failed' "
            "ORDER BY created_at DESC LIMIT 1")).scalar()
        self.fingerprint = conn.execute(sa.text(
            "SELECT error_fingerprint FROM webhook_events WHERE processing_status = 'failed' "
            "AND error_fingerprint IS NOT NULL ORDER BY created_at DESC LIMIT 1")).scalar()
        self.run_id = conn.execute(sa.text("SELECT max(id) FROM reconciliation_runs")).scalar() or 1
        self.item_id = conn.execute(sa.text("SELECT max(id) FROM reconciliation_items")).scalar() or 1


# Parameter name -> its value for a dashboard-like call. Add a name here when a query
# introduces one.
PARAMETERS: dict[str, Callable[[Sample], Any]] = {
    "start": lambda s: s.now - s.window,
    "end": lambda s: s.now,
    "since": lambda s: s.now - s.window,
    "bucket": lambda s: "hour" if s.window <= timedelta(days=7) else "day",
    "stuck_before": lambda s: s.now - timedelta(minutes=15),
    "stale_before": lambda s: s.now - timedelta(days=7),
    "limit": lambda s: 50,
    "offset": lambda s: 0,
    "search": lambda s: None,
    "statuses": lambda s: [],
    "event_types": lambda s: [],
    "stripe_event_id": lambda s: s.failed_event_id,
    "job": lambda s: None,
    "run_id": lambda s: s.run_id,
    "item_id": lambda s: s.item_id,
    "report_id": lambda s: 1,
    "now": lambda s: s.now,
    "fingerprint": lambda s: s.fingerprint,
    "alert_id": lambda s: 1,
}

# Second measurements for queries whose cost depends on a filter: label -> overrides.
VARIANTS: dict[str, dict[str, dict[str, Callable[[Sample], Any]]]] = {
    "events_page": {"search": {"search": lambda s: "deadlock"},
                    "failed": {"statuses": lambda s: ["failed"]}},
    "events_count": {"search": {"search": lambda s: "deadlock"},
                     "failed": {"statuses": lambda s: ["failed"]}},
}


def parameter_names(query: Query) -> set[str]:
    return set(query.statement.compile().params)


def unfillable() -> list[str]:
    """One line per query with a parameter PARAMETERS does not know."""
    problems = []
    for name, query in QUERIES.items():
        missing = sorted(parameter_names(query) - PARAMETERS.keys())
        if missing:
            problems.append(f"query '{name}' ({query.source}) has parameter(s) "
                            f"{', '.join(missing)} the bench cannot fill")
    return problems


def cases() -> list[tuple[str, str, dict]]:
    """(label, query name, overrides) for every measurement, in QUERIES order."""
    found = []
    for name in QUERIES:
        found.append((name, name, {}))
        for label, overrides in VARIANTS.get(name, {}).items():
            found.append((f"{name} ({label})", name, overrides))
    return found


def parameters_for(name: str, overrides: dict, sample: Sample) -> dict:
    makers = {**PARAMETERS, **overrides}
    return {param: makers[param](sample) for param in parameter_names(QUERIES[name])}


def load(url: str, events: int, *, days: int, now: datetime) -> tuple[int, float]:
    engine = sa.create_engine(url, hide_parameters=True)
    try:
        migrate.run(engine)
        started = time.monotonic()
        report = demo_data.run(engine, now=now, days=days, events_per_day=math.ceil(events / days),
                               trigger="cli", progress=lambda m: print(f"    {m}", flush=True))
        seconds = time.monotonic() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return report.events, seconds


def measure(url: str, *, now: datetime, window_days: int, runs: int,
            give_up_ms: int = 600_000, only: set[str] | None = None) -> dict[str, float]:
    """Median milliseconds per case; a case slower than ``give_up_ms`` is cancelled by the
    server and recorded as infinite (shown as "> N"), so one slow query cannot stall the run."""
    settings = get_settings(DATABASE_URL=url, DASHBOARD_DATABASE_URL=None,
                            MONITOR_STATEMENT_TIMEOUT_MS=give_up_ms)
    engine = create_dashboard_engine(settings)
    timings = {}
    try:
        with engine.connect() as conn:
            sample = Sample(conn, now=now, window_days=window_days)
        for label, name, overrides in cases():
            if only and name not in only:
                continue
            params = parameters_for(name, overrides, sample)
            try:
                timings[label] = median_ms(lambda name=name, params=params: fetch_df(engine, name, **params), runs)
            except sa.exc.DBAPIError as error:
                if not isinstance(error.orig, psycopg.errors.QueryCanceled):
                    raise
                timings[label] = math.inf
            shown = f"> {give_up_ms:,}" if math.isinf(timings[label]) else f"{timings[label]:.1f}"
            print(f"    {label}: {shown} ms", flush=True)
    finally:
        engine.dispose()
    return timings


def table(results: dict[int, dict[str, float]]) -> str:
    sizes = sorted(results)
    labels = list(results[sizes[0]])
    width = max(len(label) for label in labels)
    head = f"{'query':<{width}}  " + "  ".join(f"{f'{n:,} ev (ms)':>16}" for n in sizes)
    if len(sizes) > 1:
        head += f"  {'ratio':>7}"
    lines = [head, "-" * len(head)]
    for label in labels:
        cells = []
        for n in sizes:
            ms = results[n][label]
            flag = "!" if ms > DASHBOARD_TIMEOUT_MS else " "  # past the dashboard's timeout
            cells.append(f"{ms:>15.1f}{flag}")
        line = f"{label:<{width}}  " + "  ".join(cells)
        if len(sizes) > 1:
            smallest = results[sizes[0]][label]
            line += f"  {results[sizes[-1]][label] / smallest:>6.1f}x" if smallest > 0 else "       -"
        lines.append(line)
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of event counts: {text!r}") from None
    if not sizes or any(n < 100 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be event counts of at least 100")
    return sorted(set(sizes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 1_000_000],
                        help="event counts, comma-separated (default 10000,1000000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query (default %(default)s)")
    parser.add_argument("--days", type=int, default=30, help="days of history (default %(default)s)")
    parser.add_argument("--window-days", type=int, default=7,
                        help="the window the queries read, ending now (default %(default)s)")
    parser.add_argument("--database-url", metavar="URL",
                        help="time the queries on this migrated, loaded database as it is "
                             "(no load, no drop) instead of throwaway ones")
    parser.add_argument("--give-up-ms", type=int, default=600_000, metavar="MS",
                        help="cancel a query after MS milliseconds and show it as '> MS' (default %(default)s)")
    parser.add_argument("--only", type=lambda text: {n.strip() for n in text.split(",") if n.strip()},
                        metavar="NAMES", help="time only these queries (comma-separated names)")
    args = parser.parse_args(argv)

    problems = unfillable()
    if problems:
        for line in problems:
            print(f"error: {line}; add it to PARAMETERS in bench/queries_bench.py", file=sys.stderr)
        return 2

    now = datetime.now(timezone.utc)
    results: dict[int, dict[str, float]] = {}
    if args.database_url:
        size = events_held(args.database_url)
        print(f"{size:,} events in the given database; timing {len(cases())} queries "
              f"× {args.runs} runs ({args.window_days}-day window)", flush=True)
        results[size] = measure(args.database_url, now=now, window_days=args.window_days, runs=args.runs,
                                give_up_ms=args.give_up_ms, only=args.only)
    for size in [] if args.database_url else args.sizes:
        print(f"{size:,} events: loading {args.days} days of demo history", flush=True)
        with ThrowawayDatabase(migrate=False) as database:
            url = database.url
            events, seconds = load(url, size, days=args.days, now=now)
            print(f"  loaded {events:,} events in {seconds:.1f} s; timing {len(cases())} queries "
                  f"× {args.runs} runs ({args.window_days}-day window)", flush=True)
            results[size] = measure(url, now=now, window_days=args.window_days, runs=args.runs,
                                    give_up_ms=args.give_up_ms, only=args.only)
    print()
    print(table(results))
    print(f"\nmedian of {args.runs} runs after a warm-up, through the dashboard's read-only engine; "
          f"'!' = slower than the dashboard's {DASHBOARD_TIMEOUT_MS} ms statement timeout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
