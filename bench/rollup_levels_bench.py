"""Median time of the queries that read the event rollups through ``webhook_window_counts`` /
``webhook_duration_window``, on a loaded database as it is, or with migrations tried inside
one transaction that is rolled back (nothing is written to the database).

    python bench/rollup_levels_bench.py --database-url URL --window-days 30 \\
        --try migrations/functions/event_rollups.sql

Times, for the window of ``--window-days`` ending now: the Overview's ``event_kpis``,
``events_by_bucket`` (daily and hourly buckets) and ``event_types``, the Errors page's
``failures_by_bucket_and_type`` and ``error_fingerprints``, the Events page's unfiltered
``events_count``, the sidebar verdict's ``failure_rate_against_usual`` (the last hour
against the 7 days before) and the ``silence`` alert rule's baseline. Each query runs once
to warm up, then ``--runs`` times; the median is printed. With ``--try FILE`` the same
queries are timed after FILE's statements ran in a transaction (and the tables they
created were analysed), which is then rolled back; the printout says how long FILE took.
The queries are those of the checkout on PYTHONPATH: for a "before" figure, run this file
with PYTHONPATH pointing at a checkout without the change, and no --try.
The connection is the URL's own (not the dashboard's role): the transaction has to create
tables. Use it on a database nobody else writes to; it holds FILE's locks while it runs.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from core.settings import get_settings
from core.sql import load_package
from devharness import events_held, median_ms
from jobs.admin.migrate import _execute_script
from queries import QUERIES

VERDICT = load_package("jobs.health", "verdict.sql")
RULES = load_package("jobs.alerting", "rules.sql")


def cases(now: datetime, window: timedelta) -> list[tuple[str, object, str, dict]]:
    """(label, statement set, query name, parameters) for every measurement."""
    start = now - window
    span = {"start": start, "end": now}
    recent = now - timedelta(hours=1)
    return [
        ("event_kpis", QUERIES, "event_kpis", {**span, "stuck_before": now - timedelta(minutes=15)}),
        ("events_by_bucket (day)", QUERIES, "events_by_bucket", {**span, "bucket": "day"}),
        ("events_by_bucket (hour)", QUERIES, "events_by_bucket", {**span, "bucket": "hour"}),
        ("event_types", QUERIES, "event_types", span),
        ("failures_by_bucket_and_type (day)", QUERIES, "failures_by_bucket_and_type", {**span, "bucket": "day"}),
        ("error_fingerprints", QUERIES, "error_fingerprints", {**span, "limit": 50}),
        ("events_count", QUERIES, "events_count", {**span, "statuses": [], "event_types": [], "search": None}),
        ("failure_rate_against_usual", VERDICT, "failure_rate_against_usual",
         {"now": now, "recent_since": recent, "usual_since": recent - timedelta(days=7)}),
        ("silence (rule)", RULES, "silence",
         {"until": now, "baseline_hours": get_settings().MONITOR_ALERT_SILENCE_BASELINE_HOURS, "weeks": 4}),
    ]


def time_all(conn, measured: list, runs: int) -> dict[str, float]:
    found = {}
    for label, statements, name, params in measured:
        found[label] = median_ms(lambda statements=statements, name=name, params=params: statements.all(conn, name, **params), runs)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, metavar="URL")
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--try", dest="tried", action="append", default=[], metavar="FILE",
                        help="SQL file to run inside a rolled-back transaction before the second timing")
    args = parser.parse_args()

    now = datetime.now(timezone.utc)
    engine = sa.create_engine(args.database_url, hide_parameters=True)
    try:
        held = events_held(args.database_url)
        with engine.connect() as conn:
            print(f"{held:,} events; window {args.window_days} days ending {now:%Y-%m-%d %H:%M} UTC; "
                  f"median of {args.runs} runs after a warm-up")
            measured = cases(now, timedelta(days=args.window_days))
            if not args.tried:
                found = time_all(conn, measured, args.runs)
            else:
                with conn.begin() as tx:
                    for path in args.tried:
                        started = time.perf_counter()
                        _execute_script(conn, Path(path).read_text())
                        print(f"{path}: {time.perf_counter() - started:.1f} s inside the transaction")
                    for table in ("webhook_event_rollup_daily", "webhook_event_duration_rollup_daily"):
                        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": table}).scalar():
                            conn.execute(sa.text(f"ANALYZE {table}"))  # fresh tables have no statistics
                    found = time_all(conn, measured, args.runs)
                    tx.rollback()
    finally:
        engine.dispose()
    print(f"\n{'query':<36}{'ms':>10}")
    for label, ms in found.items():
        print(f"{label:<36}{ms:>10.1f}")

if __name__ == "__main__":
    main()
