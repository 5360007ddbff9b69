"""Fault scenarios against real processes: a table of what was lost, duplicated or stuck.

    python bench/faults.py            # full size: 1,000 deliveries, 2 and 4 receiver workers
    python bench/faults.py --quick    # 200 deliveries, 2 workers, smaller cleanup and incident

Besides the receiver and PostgreSQL restarts: Stripe (a local_stripe server) answering 500
or 429 under ``sweep`` and ``reconcile``, the alert webhook down during an incident under
two ``watch`` processes, two ``schedule`` processes (about two minutes: cron times have
minute resolution), and PostgreSQL restarted under ``watch``.

Each scenario runs on a throwaway database (an embedded PostgreSQL in a temporary folder,
or a scratch database on DATABASE_URL's server) with the reference receiver under uvicorn
with several worker processes, the jobs as ``python -m jobs`` processes
(devharness/faults.py holds the scenarios; the test suite runs them at a smaller size,
tests/test_crash_safety.py). The PostgreSQL restart scenarios need the embedded server
(DATABASE_URL unset). Prints one row per scenario:
events before and after, lost, duplicated, stuck, seconds to recover. Exit code 1 when a
row is not clean. docs/reliability.md has the figures and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from devharness import ThrowawayDatabase, empty_tables
from devharness.faults import (ScenarioResult, channel_down_during_incident, postgres_restarted_during_cleanup,
                               postgres_restarted_during_retry, postgres_restarted_under_receiver, postgres_restarted_under_watch,
                               receiver_killed_mid_burst, stripe_failing_during_reconcile, stripe_failing_during_sweep,
                               two_schedulers)


def table(results: list[ScenarioResult]) -> str:
    header = ("scenario", "before", "after", "lost", "duplicated", "stuck", "recover s", "notes")
    rows = [header]
    for r in results:
        notes = ", ".join(f"{k}={v}" for k, v in r.detail.items())
        rows.append((r.scenario, str(r.before), str(r.after), str(r.lost), str(r.duplicated), str(r.stuck),
                     "not recovered" if r.recover_s is None else f"{r.recover_s:.1f}", notes))
    return "\n".join("| " + " | ".join(row) + " |" + ("\n|" + "---|" * len(header) if i == 0 else "")
                     for i, row in enumerate(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one worker count")
    parser.add_argument("--events", type=int, help="deliveries per burst (default 1000, --quick 200)")
    args = parser.parse_args(argv)
    events = args.events or (200 if args.quick else 1000)
    plans = [(2, 0.2)] if args.quick else [(2, 0.2), (4, 0.2), (4, 0.5)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}", flush=True)
    results = []
    with ThrowawayDatabase(prefix="faults_bench") as database:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from core.db import normalise_url

        engine = create_engine(normalise_url(database.url), poolclass=NullPool)  # outlives restarts
        for workers, kill_at in plans:
            empty_tables(engine)
            # No registration held on purpose: whatever the kill catches mid-way, as in production.
            # The hung-worker limit stays at its default (5 min): recovery in seconds is the
            # dead workers' events being taken over because they died.
            result = receiver_killed_mid_burst(database.url, events=events, workers=workers, kill_at=kill_at,
                                               held=0, concurrency=32, deadline_s=120)
            result.scenario = (f"receiver ({workers} workers) SIGKILL at {kill_at:.0%} of {events} deliveries, "
                               "restart, redelivery")
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
        # Stripe answering errors for a while: an outage the retries outlast (the run fails,
        # recorded failed; the next completes), and a short one the same run waits out.
        stripe_plans = [(stripe_failing_during_sweep, 500, 50), (stripe_failing_during_sweep, 429, 3),
                        (stripe_failing_during_reconcile, 500, 50), (stripe_failing_during_reconcile, 429, 3)]
        if not args.quick:
            stripe_plans.insert(2, (stripe_failing_during_sweep, 429, 50))  # 6 backoffs: up to a minute
        for scenario, status, failures in stripe_plans:
            empty_tables(engine)
            size = {"events": events // 5} if scenario is stripe_failing_during_sweep else {
                "registrations": events // 5, "fail_after": events // 20}
            result = scenario(database.url, status=status, failures=failures, **size)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
        empty_tables(engine)
        result = channel_down_during_incident(database.url, alerts=5 if args.quick else 20, watchers=2,
                                              down_s=5.0 if args.quick else 30.0, deadline_s=120)
        results.append(result)
        print(table([result]).splitlines()[-1], flush=True)
        empty_tables(engine)
        result = two_schedulers(database.url, fire_times=1 if args.quick else 2)
        if result.ok:
            result.detail.pop("logs", None)
        results.append(result)
        print(table([result]).splitlines()[-1], flush=True)
        if database.data_dir is None:
            print("DATABASE_URL is set: the PostgreSQL restart scenarios need the embedded server; skipped")
        else:
            empty_tables(engine)
            result = postgres_restarted_under_receiver(database.url, database.data_dir, events=events // 2,
                                                       down_s=2.0, concurrency=32, deadline_s=120)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            empty_tables(engine)
            result = postgres_restarted_under_watch(database.url, database.data_dir, down_s=4.0,
                                                    alerts=5 if args.quick else 20)
            if result.ok:
                result.detail.pop("log", None)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            empty_tables(engine)
            result = postgres_restarted_during_cleanup(database.url, database.data_dir,
                                                       events=20_000 if args.quick else 100_000, batch_size=500)
            result.detail.pop("first_log", None)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            empty_tables(engine)
            result = postgres_restarted_during_retry(database.url, database.data_dir, events=events // 2,
                                                     restart_after=events // 20, down_s=4.0)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
        engine.dispose()
    print()
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
