"""Reconcile N Checkout Sessions (10% mismatched) against the local Stripe server.

    python bench/reconcile_bench.py --sessions 2000             # quick check (about 30 s)
    python bench/reconcile_bench.py                             # the target: 100,000 sessions
    python bench/reconcile_bench.py --rate 1000 --stripe-limit 0   # the code's own cost, unpaced

Builds a throwaway database (an embedded PostgreSQL in a temporary folder, or a scratch
database on DATABASE_URL's server, dropped afterwards) with N registrations, and serves N
real-shaped Checkout Sessions from ``local_stripe`` in a separate process, rate-limited per
endpoint like Stripe's test mode (25 requests/s, 429 beyond). One in ten pairs disagrees, in
every mismatch kind. Then runs ``jobs.reconcile.reconciler`` in this process with the production
gateway (paced at ``--rate`` requests/s, default the production pace) and prints wall time,
Stripe requests made against the minimum (one list page per 100 sessions plus one retrieve
per auto-fix and per completed registration missing from the list), 429s met, and peak
memory (resource.getrusage) before and after. Checks the counts against the plan; exit
code 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from core.db import create_jobs_engine
from core.settings import get_settings
from devharness import ThrowawayDatabase
from jobs.admin import migrate
from jobs.reconcile import reconciler as reconcile
from jobs.stripe_gateway import DEFAULT_REQUESTS_PER_SECOND, StripeGateway

API_KEY = "sk_test_reconcile_bench"
WINDOW = timedelta(days=6, hours=12)  # all inside the default 7-day lookback

# Pair n's role is n % 100: ten in a hundred disagree, every kind at least once.
PLAN = {
    0: "paid_but_pending", 7: "paid_but_pending",
    1: "expired_but_pending", 8: "expired_but_pending",
    2: "paid_but_failed", 9: "paid_but_failed",
    3: "paid_no_registration",
    4: "completed_not_paid",
    5: "completed_missing_in_stripe",
    6: "amount_mismatch",
}
# (session status, payment status, session amount) or None for "no session in Stripe";
# (registration status, registration amount) or None for "no registration".
SESSION_FOR = {
    "paid_but_pending": ("complete", "paid", 2500), "expired_but_pending": ("expired", "unpaid", 2500),
    "paid_but_failed": ("complete", "paid", 2500), "paid_no_registration": ("complete", "paid", 2500),
    "completed_not_paid": ("expired", "unpaid", 2500), "completed_missing_in_stripe": None,
    "amount_mismatch": ("complete", "paid", 3000), None: ("complete", "paid", 2500),
}
REGISTRATION_FOR = {
    "paid_but_pending": "pending", "expired_but_pending": "pending", "paid_but_failed": "failed",
    "paid_no_registration": None, "completed_not_paid": "completed",
    "completed_missing_in_stripe": "completed", "amount_mismatch": "completed", None: "completed",
}

FILL = sa.text("""
    INSERT INTO registrations (id, stripe_checkout_session_id, email, processing_status, amount_total,
                               currency, created_at, completed_at)
    SELECT lpad(to_hex(g + 1), 32, '0')::uuid,
           'cs_test_bench' || lpad(g::text, 47, '0'),
           'person' || g || '@example.com',
           CASE WHEN g % 100 IN (0, 7, 1, 8) THEN 'pending'
                WHEN g % 100 IN (2, 9) THEN 'failed'
                ELSE 'completed' END,
           2500, 'eur',
           CAST(:start AS timestamptz) + g * CAST(:step AS interval) - interval '1 minute',
           CASE WHEN g % 100 NOT IN (0, 7, 1, 8, 2, 9)
                THEN CAST(:start AS timestamptz) + g * CAST(:step AS interval) END
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
    WHERE g % 100 <> 3
""")


def session_id(n: int) -> str:
    return f"cs_test_bench{n:047d}"


def registration_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def serve_sessions(n_sessions: int, start_ts: float, step_s: float, limit: int | None, queue) -> None:
    """Child process: build the sessions and serve them until terminated."""
    from local_stripe import LocalStripe, StripeState, checkout_session

    state = StripeState()
    shared: dict[str, object] = {}  # identical nested objects stored once: halves the server's memory
    for n in range(n_sessions):
        kind = PLAN.get(n % 100)
        shape = SESSION_FOR[kind]
        if shape is None:
            continue
        status, payment_status, amount = shape
        session = checkout_session(
            id=session_id(n), created=int(start_ts + n * step_s), status=status,
            payment_status=payment_status, amount_total=amount, currency="eur",
            client_reference_id=registration_id(n), email=f"person{n}@example.com")
        for key, value in session.items():
            if isinstance(value, (dict, list)):
                session[key] = shared.setdefault(json.dumps(value, sort_keys=True), value)
        state.add_checkout_session(session)
    server = LocalStripe(state, api_keys={API_KEY}, rate_limit=limit)
    queue.put(server.url)
    server.serve_forever()


def expected_counts(n_sessions: int) -> dict[str, int]:
    kinds = [PLAN.get(n % 100) for n in range(n_sessions)]
    auto = sum(k in ("paid_but_pending", "expired_but_pending") for k in kinds)
    return {
        "stripe_payments_found": sum(SESSION_FOR[k] is not None and SESSION_FOR[k][1] == "paid" for k in kinds),
        "local_registrations_found": sum(REGISTRATION_FOR[k] is not None for k in kinds),
        "mismatches_detected": sum(k is not None for k in kinds),
        "auto_fixed_count": auto,
        "manual_review_needed": sum(k is not None for k in kinds) - auto,
    }


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000, help="Checkout Sessions (default %(default)s)")
    parser.add_argument("--rate", type=float, default=DEFAULT_REQUESTS_PER_SECOND,
                        help="the gateway's pace in requests/s (default: production, %(default)s); "
                        "the server answers 429 above --stripe-limit")
    parser.add_argument("--stripe-limit", type=int, default=25,
                        help="the local server's requests/s per endpoint before 429, like Stripe's "
                        "test mode (default %(default)s; 0: unlimited)")
    args = parser.parse_args()
    n = args.sessions
    now = datetime.now(timezone.utc)
    start = now - WINDOW
    step = WINDOW / max(n, 1)

    with ThrowawayDatabase(migrate=False) as database:
        url = database.url
        engine = create_jobs_engine(get_settings(DATABASE_URL=url))
        migrate.run(engine)
        filled = time.monotonic()
        for first in range(0, n, 50_000):
            with engine.begin() as conn:
                conn.execute(FILL, {"start": start, "step": step, "first": first,
                                    "last": min(first + 50_000, n) - 1})
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE registrations"))
        print(f"  {n:,} registrations written in {time.monotonic() - filled:.1f} s", file=sys.stderr)

        context = mp.get_context("spawn")
        queue = context.Queue()
        server = context.Process(target=serve_sessions, args=(n, start.timestamp(), step.total_seconds(),
                                                                  args.stripe_limit or None, queue),
                                 daemon=True)
        server.start()
        try:
            base = queue.get(timeout=600)
            print(f"  local Stripe serving at {base}", file=sys.stderr)
            gateway = StripeGateway(API_KEY, api_base=base, requests_per_second=args.rate)
            before = peak_mib()
            started = time.monotonic()
            report = reconcile.run(engine, now=now, gateway=gateway, trigger="cli")
            wall = time.monotonic() - started
        finally:
            server.terminate()
            server.join(timeout=10)
        engine.dispose()

    expected = expected_counts(n)
    listed = sum(SESSION_FOR[PLAN.get(i % 100)] is not None for i in range(n))
    needed_retrieves = expected["auto_fixed_count"] + sum(
        PLAN.get(i % 100) == "completed_missing_in_stripe" for i in range(n))
    minimum = math.ceil(listed / 100) + needed_retrieves
    print(f"sessions              {n:,} ({expected['mismatches_detected']:,} mismatched)")
    print(f"wall time             {wall:.1f} s ({n / wall:,.0f} sessions/s) at a pace of {args.rate:g} requests/s")
    print(f"stripe requests       {report.stripe_requests:,} made, minimum {minimum:,} "
          f"({math.ceil(listed / 100):,} list pages + {needed_retrieves:,} retrieves); "
          f"{gateway.transport.rate_limited} answered 429")
    print(f"pages read            {report.pages_read:,}")
    print(f"peak memory           {peak_mib():.0f} MiB (before the run: {before:.0f} MiB)")
    ok = True
    for name, want in expected.items():
        got = getattr(report, name)
        flag = "ok" if got == want else "DIFFERS"
        ok &= got == want
        print(f"  {name:<26} {got:>8,}  expected {want:>8,}  {flag}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
