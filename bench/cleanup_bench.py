"""Archive N old webhook events with cleanup while another process keeps recording new ones.

    python bench/cleanup_bench.py --events 20000          # quick check (a few seconds)
    python bench/cleanup_bench.py                          # the target: 1,000,000 old events

Builds a throwaway database (an embedded PostgreSQL in a temporary folder, or a scratch
database on DATABASE_URL's server, dropped afterwards) holding N completed events older than
the retention, 1% of them failed (which must stay). A second process then records new events
the way a webhook handler does (``webhook_event_begin`` then ``webhook_event_complete``, each
committed) at ``--insert-rate`` deliveries per second, timing every delivery. After a few
seconds of baseline, ``cleanup`` archives the old events (``--skip-registrations``) while the
handler keeps going. Prints rows archived per second and the handler's delivery latency
before and during the run (median, p99, worst), then checks that no row was lost: archive +
live = old + new, every failed event still live. Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from devharness import ThrowawayDatabase
from jobs.admin import migrate
from jobs.cleanup import command as cleanup
from jobs.cli_support import terminal_progress

FILL_CHUNK = 50_000
# Old events: a realistic checkout.session.completed payload (about 0.6 kB of JSON).
FILL = sa.text("""
    INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                created_at, processed_at, processing_duration_ms, stripe_created_at,
                                updated_at, error_message, outcome)
    SELECT 'evt_bench_' || g,
           'checkout.session.completed',
           CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'completed' END,
           jsonb_build_object('id', 'evt_bench_' || g, 'object', 'event', 'type', 'checkout.session.completed',
               'livemode', false, 'data', jsonb_build_object('object', jsonb_build_object(
                   'id', 'cs_test_' || md5(g::text), 'object', 'checkout.session',
                   'amount_total', 2500, 'currency', 'eur', 'payment_status', 'paid', 'status', 'complete',
                   'client_reference_id', md5('r' || g::text),
                   'customer_details', jsonb_build_object('email', 'user' || g || '@example.com', 'name', 'A Person'),
                   'metadata', jsonb_build_object('event', 'spring-meetup', 'note', repeat('x', 200))))),
           1,
           CAST(:oldest AS timestamptz) + g * CAST(:step AS interval),
           CAST(:oldest AS timestamptz) + g * CAST(:step AS interval) + interval '40 milliseconds',
           40,
           CAST(:oldest AS timestamptz) + g * CAST(:step AS interval),
           CAST(:oldest AS timestamptz) + g * CAST(:step AS interval),
           CASE WHEN g % 100 = 0 THEN 'registration not found' END,
           CASE WHEN g % 100 <> 0 THEN 'registration_completed' END
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
""")


def fill(engine, n_events: int, now: datetime, events_days: int) -> None:
    """N events spread over the year before the retention cutoff."""
    oldest = now - timedelta(days=events_days + 365)
    step = timedelta(days=365) / max(n_events, 1)
    started = time.monotonic()
    for first in range(1, n_events + 1, FILL_CHUNK):
        last = min(first + FILL_CHUNK - 1, n_events)
        with engine.begin() as conn:
            conn.execute(FILL, {"oldest": oldest, "step": step, "first": first, "last": last})
        print(f"\r  filled {last:,} of {n_events:,} old events", end="", file=sys.stderr, flush=True)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE webhook_events"))
    print(f"\r  filled {n_events:,} old events in {time.monotonic() - started:.1f} s", file=sys.stderr)


def handler(url: str, rate: float, stop, results) -> None:
    """The second process: record deliveries like a webhook handler, timing each one."""
    import psycopg

    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    latencies: list[tuple[float, float]] = []  # (monotonic start, seconds)
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        n = 0
        while not stop.is_set():
            n += 1
            event_id = f"evt_live_{n}"
            started = time.monotonic()
            conn.execute("SELECT * FROM webhook_event_begin(%s, 'checkout.session.completed', "
                         "%s::jsonb)", (event_id, f'{{"id": "{event_id}", "object": "event"}}'))
            conn.execute("SELECT webhook_event_complete(%s, 'ignored')", (event_id,))
            latencies.append((started, time.monotonic() - started))
            if interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_at = time.monotonic()
    results.put(latencies)


def describe(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{label}: no deliveries"
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{label}: {len(ms):,} deliveries, median {statistics.median(ms):.1f} ms, "
            f"p99 {p99:.1f} ms, worst {ms[-1]:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="old events to archive (default 1,000,000)")
    parser.add_argument("--batch-size", type=int, default=cleanup.DEFAULT_BATCH_SIZE,
                        help=f"events per archival batch (default {cleanup.DEFAULT_BATCH_SIZE})")
    parser.add_argument("--insert-rate", type=float, default=100.0,
                        help="new deliveries per second during the run; 0 = as fast as possible (default 100)")
    parser.add_argument("--baseline-seconds", type=float, default=3.0,
                        help="handler-only time before cleanup starts (default 3)")
    args = parser.parse_args()
    events_days = cleanup.DEFAULT_EVENTS_DAYS
    now = datetime.now(timezone.utc)

    with ThrowawayDatabase(migrate=False) as database:
        url = database.url
        engine = sa.create_engine(url, pool_size=4, hide_parameters=True)
        migrate.run(engine)
        print(f"cleanup bench: {args.events:,} old events, batches of {args.batch_size:,}, "
              f"handler at {args.insert_rate or 'max'} deliveries/s", file=sys.stderr)
        fill(engine, args.events, now, events_days)
        failed_old = args.events // 100

        ctx = mp.get_context("spawn")
        stop, results = ctx.Event(), ctx.Queue()
        worker = ctx.Process(target=handler, args=(url, args.insert_rate, stop, results))
        worker.start()
        time.sleep(args.baseline_seconds)
        cleanup_started = time.monotonic()
        with terminal_progress() as progress:
            report = cleanup.run(engine, now=datetime.now(timezone.utc), events_days=events_days,
                                 batch_size=args.batch_size, skip_registrations=True, progress=progress)
        cleanup_finished = time.monotonic()
        time.sleep(0.5)
        stop.set()
        latencies = results.get(timeout=60)
        worker.join(timeout=30)

        elapsed = cleanup_finished - cleanup_started
        before = [s for t, s in latencies if t < cleanup_started]
        during = [s for t, s in latencies if cleanup_started <= t <= cleanup_finished]
        print(f"archived {report.events_archived:,} events in {report.event_batches:,} batches, "
              f"{elapsed:.1f} s: {report.events_archived / max(elapsed, 1e-9):,.0f} rows/s")
        print(describe("handler before cleanup", before))
        print(describe("handler during cleanup", during))

        with engine.connect() as conn:
            live = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar()
            archived = conn.execute(sa.text("SELECT count(*) FROM webhook_events_archive")).scalar()
            failed_live = conn.execute(sa.text(
                "SELECT count(*) FROM webhook_events WHERE processing_status = 'failed'")).scalar()
            stuck = conn.execute(sa.text(
                "SELECT count(*) FROM webhook_events WHERE processing_status = 'processing'")).scalar()
        engine.dispose()
        checks = {
            "archive + live = old + new": archived + live == args.events + len(latencies),
            "every completed old event archived": archived == args.events - failed_old,
            "every failed event kept": failed_live == failed_old,
            "no delivery left processing": stuck == 0,
        }
        for name, ok in checks.items():
            print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
