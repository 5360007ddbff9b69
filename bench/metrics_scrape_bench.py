"""Median time of one scrape of ``python -m jobs metrics``, query by query and whole.

    python bench/metrics_scrape_bench.py --events 1000000            # a throwaway database of demo data
    python bench/metrics_scrape_bench.py --database-url URL --runs 9  # a database loaded before

Each query of ``jobs/health/metrics.sql`` runs on one connection (each once to warm up, then
``--runs`` times; the median in milliseconds), then the collector's whole ``collect()`` (the
verdict included) as a scrape runs it, and finally a real exporter process is scraped over
HTTP ``--runs`` times. With ``--events`` the database is made, loaded with ``--days`` days
of demo history ending now (VACUUM ANALYZE) and dropped afterwards; with ``--database-url``
it is read as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import sqlalchemy as sa

from core.settings import get_settings
from devharness import ManagedProcess, ThrowawayDatabase, events_held, line_ready, median_ms
from devharness.query_timing import add_database_options, load, print_medians
from jobs.health import metrics

REPO = Path(__file__).resolve().parent.parent
QUERIES = ("events_by_status", "duration_histogram", "failed_events", "missed_events", "firing_alerts", "jobs",
           "review_items", "stripe_endpoints", "last_event")


def measure(url: str, *, runs: int) -> dict[str, float]:
    settings = get_settings(DATABASE_URL=url, DASHBOARD_DATABASE_URL=None)
    engine = sa.create_engine(url, hide_parameters=True)
    timings: dict[str, float] = {}
    try:
        now = datetime.now(timezone.utc)
        with engine.connect() as conn:
            for name in QUERIES:
                params = {"now": now} if "now" in metrics.SQL[name].parameters else {}
                timings[name] = median_ms(lambda name=name, params=params: metrics.SQL.all(conn, name, **params), runs)
                print(f"    {name}: {timings[name]:.1f} ms", flush=True)
        collector = metrics.MonitorCollector(engine, settings=settings)
        timings["collect() (whole scrape, verdict included)"] = median_ms(lambda: list(collector.collect()), runs)
    finally:
        engine.dispose()
    exporter = ManagedProcess([sys.executable, "-m", "jobs", "metrics", "--port", "0"], name="metrics", cwd=REPO,
                              extra_env={"DATABASE_URL": url, "DASHBOARD_DATABASE_URL": None},
                              ready=line_ready(r"serving metrics at (http://\S+/metrics)"), stop_timeout_s=20)
    with exporter, httpx.Client(timeout=60) as client:
        target = exporter.ready_value.group(1)
        response = client.get(target)
        assert "webhook_monitor_up 1.0" in response.text, response.text[-500:]
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(target).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
        timings["HTTP GET /metrics (exporter process)"] = sorted(samples)[len(samples) // 2]
        timings["exposition size (kB)"] = len(response.content) / 1000
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_options(parser, runs_help="timed runs (default %(default)s)")
    args = parser.parse_args(argv)
    now = datetime.now(timezone.utc)
    if args.database_url:
        size = events_held(args.database_url)
        timings = measure(args.database_url, runs=args.runs)
    else:
        with ThrowawayDatabase(migrate=False) as database:
            print(f"loading {args.events:,} events ({args.days} days of demo history)", flush=True)
            started = time.monotonic()
            size = load(database.url, args.events, days=args.days, now=now)
            print(f"    loaded in {time.monotonic() - started:.0f} s", flush=True)
            timings = measure(database.url, runs=args.runs)
    print_medians("step", size, timings)
    print(f"\nmedian of {args.runs} runs after a warm-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
