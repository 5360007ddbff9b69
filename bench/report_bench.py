"""Time to build the weekly health report (every number from the dashboard's named queries,
then both templates rendered) at two sizes of history.

    python bench/report_bench.py --sizes 2000,20000        # quick check (under a minute)
    python bench/report_bench.py                            # 10,000 and 1,000,000 events

For each size: a throwaway migrated database (devharness), ``--days`` days of demo history
ending now (``jobs.admin.demo_data``, which vacuums and analyses what it loaded), one health
snapshot; then ``health_report.build`` for the 7 days before now, once to warm up and
``--runs`` times. Prints the median of the collecting (queries) and rendering (Jinja2) parts,
the size of the HTML, and the slowest named query of the report.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from datetime import datetime, timedelta, timezone

from core.db import create_jobs_engine
from core.settings import get_settings
from devharness import ThrowawayDatabase
from jobs.admin import demo_data
from jobs.health import report as health_report
from jobs.health import report_data
from jobs.health import snapshot as health_snapshot
from queries import QUERIES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="events in the history, comma-separated")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    return parser.parse_args(argv)


class _Timed:
    """QUERIES.all wrapped to add each named query's time to ``spent``."""

    def __init__(self):
        self.spent: dict[str, float] = {}
        self._all = QUERIES.all

    def __call__(self, bind, name, /, **params):
        started = time.perf_counter()
        try:
            return self._all(bind, name, **params)
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started


def measure(url: str, *, now: datetime, runs: int) -> dict:
    engine = create_jobs_engine(get_settings(DATABASE_URL=url))
    collect_ms, render_ms, per_query = [], [], []
    try:
        start, end = now - timedelta(days=7), now
        for attempt in range(runs + 1):
            timed = _Timed()
            QUERIES.all = timed  # the report's queries, timed one by one (instance attribute)
            try:
                started = time.perf_counter()
                with engine.connect() as conn:
                    data = report_data.collect(conn, start=start, end=end)
                collected = time.perf_counter()
                rendered = health_report.render(data, dashboard_url="https://monitor.example.org",
                                                generated_at=now)
                finished = time.perf_counter()
            finally:
                del QUERIES.all
            if attempt:  # the first run warms the caches
                collect_ms.append((collected - started) * 1000)
                render_ms.append((finished - collected) * 1000)
                per_query.append(timed.spent)
    finally:
        engine.dispose()
    slowest = max(per_query[0], key=lambda name: statistics.median(run[name] for run in per_query))
    return {"collect_ms": statistics.median(collect_ms), "render_ms": statistics.median(render_ms),
            "html_kb": len(rendered.html.encode()) / 1024, "text_kb": len(rendered.text.encode()) / 1024,
            "slowest": slowest, "slowest_ms": statistics.median(run[slowest] for run in per_query) * 1000}


def main(argv=None) -> int:
    args = parse_args(argv)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    for size in sizes:
        with ThrowawayDatabase() as database:
            engine = create_jobs_engine(get_settings(DATABASE_URL=database.url))
            try:
                started = time.monotonic()
                loaded = demo_data.run(engine, now=now, days=args.days, events_per_day=math.ceil(size / args.days))
                health_snapshot.run(engine, now=now)
                print(f"{loaded.events:,} events loaded in {time.monotonic() - started:.0f} s", flush=True)
            finally:
                engine.dispose()
            results[size] = measure(database.url, now=now, runs=args.runs)
    print()
    print("| events | collect (ms) | render (ms) | HTML (kB) | text (kB) | slowest query (ms) |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for size, r in results.items():
        print(f"| {size:,} | {r['collect_ms']:.0f} | {r['render_ms']:.1f} | {r['html_kb']:.0f} | {r['text_kb']:.1f} "
              f"| {r['slowest']} {r['slowest_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
