"""Sweep 100,000 Stripe events over 30 days against a 1,000,000-row webhook_events.

    python -m bench.sweep_bench --events 5000 --rows 50000      # quick check
    python -m bench.sweep_bench                                 # the target
    python -m bench.sweep_bench --rate 1000 --stripe-limit 0    # the code's own cost, unpaced

Builds a throwaway database with ``--rows`` webhook events (the app's history: every Stripe
event of the window but the missed ones, a tenth of them already archived, and older events
Stripe has forgotten), and serves ``--events`` real-shaped checkout events spread over 30
days from ``local_stripe`` in a separate process, rate-limited like Stripe's test mode (25
requests/s per endpoint, 429 beyond). One event in 100 never reached the app and Stripe
still retries it (``pending_webhooks`` 1); one in 200 was answered 2xx and never recorded.
Then runs ``jobs.replay.sweep.run`` over 720 hours with the production gateway and prints the wall
time, the Stripe requests against the minimum (one page per 100 events of each pass), the
time spent comparing with the database, peak memory, and the counts against the plan
(exit 1 when they differ).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from core.db import create_jobs_engine
from core.settings import DEFAULT_SWEEP_EVENT_TYPES, get_settings, sweep_event_types
from devharness import ThrowawayDatabase
from jobs.replay import sweep
from jobs.stripe_gateway import DEFAULT_REQUESTS_PER_SECOND, StripeGateway

API_KEY = "sk_test_sweep_bench"
WINDOW = timedelta(days=30) - timedelta(hours=1)  # inside the 720-hour lookback
# The newest event is older than the sweep's in-flight grace, so every event is swept.
NEWEST_AGE = timedelta(minutes=10)


def event_id(n: int) -> str:
    return f"evt_bench{n:015d}"


def undelivered(n: int) -> bool:
    return n % 100 == 0


def answered_unrecorded(n: int) -> bool:
    return n % 200 == 1


def archived(n: int) -> bool:
    return n % 10 == 5


FILL_WINDOW = sa.text("""
    INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                created_at, processed_at, stripe_created_at)
    SELECT 'evt_bench' || lpad(g::text, 15, '0'), 'checkout.session.completed', 'completed',
           jsonb_build_object('id', 'evt_bench' || lpad(g::text, 15, '0'), 'object', 'event'), 1,
           to_timestamp(CAST(:start AS double precision) + g * CAST(:step AS double precision)),
           to_timestamp(CAST(:start AS double precision) + g * CAST(:step AS double precision)),
           to_timestamp(CAST(:start AS double precision) + g * CAST(:step AS double precision))
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
    WHERE g % 100 <> 0 AND g % 200 <> 1 AND g % 10 <> 5
""")
FILL_ARCHIVE = sa.text("""
    INSERT INTO webhook_events_archive (id, stripe_event_id, event_type, processing_status, payload,
                                        attempts, created_at, updated_at)
    SELECT gen_random_uuid(), 'evt_bench' || lpad(g::text, 15, '0'), 'checkout.session.completed',
           'completed', '{}'::jsonb, 1, to_timestamp(CAST(:start AS double precision)),
           to_timestamp(CAST(:start AS double precision))
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
    WHERE g % 10 = 5 AND g % 100 <> 0 AND g % 200 <> 1
""")
FILL_OLDER = sa.text("""
    INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                created_at, stripe_created_at)
    SELECT 'evt_older' || lpad(g::text, 15, '0'), 'checkout.session.completed', 'completed',
           '{}'::jsonb, 1, to_timestamp(CAST(:start AS double precision) - g),
           to_timestamp(CAST(:start AS double precision) - g)
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
""")


def serve_events(n_events: int, start_ts: float, step_s: float, limit: int | None, queue) -> None:
    """Child process: build the events and serve them until terminated."""
    import json

    from local_stripe import LocalStripe, StripeState, checkout_session, event

    state = StripeState()
    shared: dict[str, object] = {}  # identical nested objects stored once
    for n in range(n_events):
        created = int(start_ts + n * step_s)
        session = checkout_session(id=f"cs_test_bench{n:047d}", created=created - 60,
                                   amount_total=2500, client_reference_id=f"reg-{n}")
        for key, value in session.items():
            if isinstance(value, (dict, list)):
                session[key] = shared.setdefault(json.dumps(value, sort_keys=True), value)
        state.add_event(event("checkout.session.completed", session, id=event_id(n), created=created,
                              pending_webhooks=1 if undelivered(n) else 0,
                              delivery_success=False if undelivered(n) else None))
    server = LocalStripe(state, api_keys={API_KEY}, rate_limit=limit)
    queue.put(server.url)
    server.serve_forever()


def backend_cpu_s(engine) -> dict[int, float]:
    """CPU seconds (user + system) each PostgreSQL backend of this database has used so far,
    by pid, from /proc (the server runs on this machine): the database's own cost, whatever
    else competes for the CPUs."""
    tick = os.sysconf("SC_CLK_TCK")
    with engine.connect() as conn:
        pids = conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars().all()
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="Stripe events (default %(default)s)")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="webhook_events rows in all (default %(default)s)")
    parser.add_argument("--rate", type=float, default=DEFAULT_REQUESTS_PER_SECOND,
                        help="the gateway's pace in requests/s (default: production, %(default)s)")
    parser.add_argument("--stripe-limit", type=int, default=25,
                        help="the local server's requests/s per endpoint before 429 (default "
                        "%(default)s, Stripe's test mode; 0: unlimited)")
    args = parser.parse_args()
    n = args.events
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = (now - WINDOW).timestamp()
    step = (WINDOW - NEWEST_AGE).total_seconds() / max(n, 1)
    missing = sum(undelivered(i) or answered_unrecorded(i) for i in range(n))
    n_undelivered = sum(undelivered(i) for i in range(n))
    n_archived = sum(archived(i) and not undelivered(i) and not answered_unrecorded(i) for i in range(n))
    in_window_rows = n - missing - n_archived
    older = max(args.rows - in_window_rows, 0)

    with ThrowawayDatabase(prefix="sweep_bench") as db:
        engine = create_jobs_engine(get_settings(DATABASE_URL=db.url))
        filled = time.monotonic()
        params = {"start": start, "step": step}
        for first in range(0, n, 100_000):
            with engine.begin() as conn:
                bounds = {"first": first, "last": min(first + 100_000, n) - 1}
                conn.execute(FILL_WINDOW, {**params, **bounds})
                conn.execute(FILL_ARCHIVE, {"start": start, **bounds})
        for first in range(1, older + 1, 200_000):
            with engine.begin() as conn:
                conn.execute(FILL_OLDER, {"start": start, "first": first,
                                          "last": min(first + 200_000, older + 1) - 1})
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("VACUUM ANALYZE webhook_events"))
            rows = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one()
        print(f"  {rows:,} webhook_events rows and {n_archived:,} archived written in "
              f"{time.monotonic() - filled:.1f} s", file=sys.stderr)

        context = mp.get_context("spawn")
        queue = context.Queue()
        server = context.Process(target=serve_events, args=(n, start, step, args.stripe_limit or None, queue),
                                 daemon=True)
        server.start()
        try:
            base = queue.get(timeout=900)
            print(f"  local Stripe serving {n:,} events at {base}", file=sys.stderr)
            gateway = StripeGateway(API_KEY, api_base=base, requests_per_second=args.rate)
            before = peak_mib()
            cpu_before = backend_cpu_s(engine)
            started = time.monotonic()
            report = sweep.run(engine, now=now, gateway=gateway,
                               event_types=sweep_event_types(DEFAULT_SWEEP_EVENT_TYPES),
                               lookback_hours=720, progress=lambda m: print(m, file=sys.stderr))
            wall = time.monotonic() - started
            cpu_after = backend_cpu_s(engine)
            database_cpu = sum(used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items())
        finally:
            server.terminate()
            server.join(timeout=10)
        engine.dispose()

    minimum = math.ceil(n / 100) + math.ceil(n_undelivered / 100)
    print(f"stripe events         {n:,} over 30 days; webhook_events {rows:,} rows")
    print(f"wall time             {wall:.1f} s at a pace of {args.rate:g} requests/s")
    print(f"stripe requests       {report.stripe_requests:,} made, minimum {minimum:,} "
          f"({math.ceil(n / 100):,} pages + {math.ceil(n_undelivered / 100):,} undelivered pages); "
          f"{report.rate_limited} answered 429")
    print(f"compare with database {report.compare_ms / 1000:.2f} s wall in all "
          f"({math.ceil(n / sweep.COMPARE_BATCH)} statements of {sweep.COMPARE_BATCH:,} ids); "
          f"database CPU for the whole sweep {database_cpu:.2f} s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"peak memory           {peak_mib():.0f} MiB (before the run: {before:.0f} MiB)")
    expected = {"stripe_events_found": n, "undelivered_found": n_undelivered, "missing_found": missing,
                "delivered_unrecorded": missing - n_undelivered, "stripe_pages": minimum}
    ok = True
    for name, want in expected.items():
        got = getattr(report, name)
        ok &= got == want
        print(f"  {name:<22} {got:>8,}  expected {want:>8,}  {'ok' if got == want else 'DIFFERS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
