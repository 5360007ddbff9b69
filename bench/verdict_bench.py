"""Median time of the status verdict's facts (``jobs.health.verdict.gather``), query by query and whole.

    python bench/verdict_bench.py --events 10000                 # a throwaway 10k database
    python bench/verdict_bench.py --database-url URL --runs 9     # a database loaded before

Every dashboard page renders the verdict in its sidebar, and ``python -m jobs watch`` runs
the same rule queries every few seconds, so this is a cost paid on every render. Each alert
rule's query (``jobs/alerting/rules.sql``, with the parameters ``gather`` and ``watch`` give
them; the rules the verdict does not reuse are marked "watch only"), the verdict's own
queries (``jobs/health/verdict.sql``) and ``gather`` run on one connection of the dashboard's
read-only engine, then ``gather`` as a page calls it (on the engine, a pooled connection
each time): each once to warm up, then ``--runs`` times; the table shows the median
milliseconds. ``now`` is the current time, as on a page.

With ``--events`` the bench makes a throwaway database (migrated, ``--days`` days of demo
history ending now, VACUUM ANALYZE) and drops it afterwards; with ``--database-url`` it
reads that database as it is and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from core.db import create_dashboard_engine
from core.settings import get_settings
from devharness import ThrowawayDatabase, events_held, median_ms
from devharness.query_timing import add_database_options, load, print_medians
from jobs.alerting.rules import RULES
from jobs.health import verdict


def measure_facts(conn, *, settings, now: datetime, runs: int) -> dict[str, float]:
    """Median milliseconds of each fact's query, and of ``gather`` on the same connection."""
    timings: dict[str, float] = {}
    for name, rule in RULES.items():  # every rule watch evaluates; the verdict reuses some
        label = name if name in verdict.REUSED_RULES else f"{name} (watch only)"
        params = rule.params(settings, now)
        timings[label] = median_ms(lambda rule=rule, params=params: verdict.RULE_SQL.all(conn, rule.query, **params), runs)
        print(f"    {label}: {timings[label]:.1f} ms", flush=True)
    recent_since = now - verdict.RECENT
    own = {"failure_rate_against_usual": dict(now=now, recent_since=recent_since,
                                              usual_since=recent_since - verdict.USUAL),
           "firing_alerts": {}, "missed_events_unrecovered": {}}
    for name, params in own.items():
        timings[name] = median_ms(lambda name=name, params=params: verdict.SQL.all(conn, name, **params), runs)
        print(f"    {name}: {timings[name]:.1f} ms", flush=True)
    timings["gather"] = median_ms(lambda: verdict.gather(conn, now=now, settings=settings), runs)
    print(f"    gather: {timings['gather']:.1f} ms", flush=True)
    return timings


def measure(url: str, *, now: datetime, runs: int) -> dict[str, float]:
    """The facts on one connection of the dashboard's read-only engine, then ``gather`` as a
    page calls it: on the engine (a connection from its pool each time)."""
    settings = get_settings(DATABASE_URL=url, DASHBOARD_DATABASE_URL=None)
    engine = create_dashboard_engine(settings)
    try:
        with engine.connect() as conn:
            timings = measure_facts(conn, settings=settings, now=now, runs=runs)
        label = "gather (on the engine)"
        timings[label] = median_ms(lambda: verdict.gather(engine, now=now, settings=settings), runs)
        print(f"    {label}: {timings[label]:.1f} ms", flush=True)
    finally:
        engine.dispose()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_options(parser, runs_help="timed runs per query (default %(default)s)")
    args = parser.parse_args(argv)
    if args.runs < 1 or (args.events is not None and args.events < 100):
        parser.error("--runs must be at least 1 and --events at least 100")

    now = datetime.now(timezone.utc)
    if args.database_url:
        size = events_held(args.database_url)
        print(f"{size:,} events in the given database", flush=True)
        timings = measure(args.database_url, now=now, runs=args.runs)
    else:
        with ThrowawayDatabase(migrate=False) as database:
            print(f"loading {args.events:,} events ({args.days} days of demo history)", flush=True)
            size = load(database.url, args.events, days=args.days, now=now)
            timings = measure(database.url, now=now, runs=args.runs)
    print_medians("query", size, timings)
    print(f"\nmedian of {args.runs} runs after a warm-up, through the dashboard's read-only engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
