"""Fault scenarios against real processes: a table of what was lost, duplicated or stuck.

    python bench/fault_recovery.py            # full size: 1,000 deliveries, 2 and 4 receiver workers
    python bench/fault_recovery.py --quick    # 200 deliveries, 2 workers, smaller cleanup and incident

Besides the receiver and PostgreSQL restarts (under a burst of deliveries, and between
deliveries to an idle receiver whose pooled connections the restart closed): Stripe (a
local_stripe server) answering 500 or 429, or not answering at all, under ``sweep`` and
``reconcile``, the alert webhook, Slack and the mail server down during an incident under
two ``watch`` processes, two ``schedule`` processes (about two minutes: cron times have
minute resolution), two ``retry`` processes over the same events, a ``watch`` SIGKILLed, and
PostgreSQL restarted under ``watch``, ``sweep``, ``reconcile``, ``cleanup`` and ``retry``.

Each scenario runs on a throwaway database (an embedded PostgreSQL in a temporary folder,
or a scratch database on DATABASE_URL's server) with the reference receiver under uvicorn
with several worker processes, the jobs as ``python -m jobs`` processes
(devharness/scenarios/ holds the scenarios; the test suite runs them at a smaller size,
tests/devharness/test_crash_safety.py). The PostgreSQL restart scenarios need the embedded server
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
from devharness.scenarios.alert_channels_down import (
    alert_webhook_down_during_incident,
    slack_and_email_down_during_incident,
)
from devharness.scenarios.concurrent_jobs import two_retries, two_schedulers
from devharness.scenarios.job_crash import job_killed_mid_run
from devharness.scenarios.postgres_restarts import (
    postgres_restarted_between_deliveries,
    postgres_restarted_during_cleanup,
    postgres_restarted_during_reconcile,
    postgres_restarted_during_retry,
    postgres_restarted_during_sweep,
    postgres_restarted_under_receiver,
    postgres_restarted_under_watch,
)
from devharness.scenarios.receiver_crash import receiver_killed_mid_burst
from devharness.scenarios.steps import ScenarioResult
from devharness.scenarios.stripe_outages import stripe_failing_during_reconcile, stripe_failing_during_sweep


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
    parser.add_argument("--only", metavar="WORD", help="run only the scenarios whose function name contains WORD")
    args = parser.parse_args(argv)
    quick = args.quick
    events = args.events or (200 if quick else 1000)
    plans = [(2, 0.2)] if quick else [(2, 0.2), (4, 0.2), (4, 0.5)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}", flush=True)
    results = []
    with ThrowawayDatabase(prefix="faults_bench") as database:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from core.db import normalise_url

        engine = create_engine(normalise_url(database.url), poolclass=NullPool, hide_parameters=True)  # outlives restarts
        url, data_dir = database.url, database.data_dir

        def run(scenario, *, quiet: tuple[str, ...] = (), title: str | None = None, **kwargs) -> None:
            if args.only and args.only not in scenario.__name__:
                return
            empty_tables(engine)
            result = scenario(url, **kwargs)
            if title:
                result.scenario = title
            if result.ok:
                for key in quiet:
                    result.detail.pop(key, None)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)

        for workers, kill_at in plans:
            # No registration held on purpose: whatever the kill catches mid-way, as in production.
            # The hung-worker limit stays at its default (5 min): recovery in seconds is the
            # dead workers' events being taken over because they died.
            run(receiver_killed_mid_burst, events=events, workers=workers, kill_at=kill_at, held=0, concurrency=32,
                deadline_s=120, title=f"receiver ({workers} workers) SIGKILL at {kill_at:.0%} of {events} deliveries, "
                                      "restart, redelivery")
        # Stripe answering errors for a while: an outage the retries outlast (the run fails,
        # recorded failed; the next completes), and a short one the same run waits out.
        sweep_size = {"events": events // 5}
        reconcile_size = {"registrations": events // 5, "fail_after": events // 20}
        run(stripe_failing_during_sweep, status=500, failures=50, **sweep_size)
        run(stripe_failing_during_sweep, status=429, failures=3, **sweep_size)
        if not quick:
            run(stripe_failing_during_sweep, status=429, failures=50, **sweep_size)  # 6 backoffs: up to a minute
        run(stripe_failing_during_reconcile, status=500, failures=50, **reconcile_size)
        run(stripe_failing_during_reconcile, status=429, failures=3, **reconcile_size)
        # Stripe not answering at all (each request held 120 s): STRIPE_TIMEOUT_SECONDS bounds
        # each try; the full run uses the default (20 s), --quick 2 s.
        timeout = 2 if quick else 20
        run(stripe_failing_during_sweep, failures=10, hang_s=120, timeout_s=timeout, **sweep_size)
        run(stripe_failing_during_sweep, failures=1, hang_s=120, timeout_s=timeout, **sweep_size)  # one lost answer
        run(stripe_failing_during_reconcile, failures=10, hang_s=120, timeout_s=timeout, **reconcile_size)
        run(alert_webhook_down_during_incident, alerts=5 if quick else 20, watchers=2, down_s=5.0 if quick else 30.0,
            deadline_s=120)
        run(slack_and_email_down_during_incident, alerts=5 if quick else 20, watchers=2, down_s=5.0 if quick else 30.0,
            deadline_s=120)
        run(two_schedulers, fire_times=1 if quick else 2, quiet=("logs",))
        run(two_retries, events=events)
        run(job_killed_mid_run, quiet=("log",))
        if data_dir is None:
            print("DATABASE_URL is set: the PostgreSQL restart scenarios need the embedded server; skipped")
        else:
            run(postgres_restarted_under_receiver, data_dir=data_dir, events=events // 2, down_s=2.0, concurrency=32,
                deadline_s=120)
            # The receiver's pool is not pre-pinged: the first claims after a restart meet
            # closed connections and are made again on new ones, each answered the first time.
            run(postgres_restarted_between_deliveries, data_dir=data_dir, before=12 if quick else 32,
                after=12 if quick else 32, concurrency=4 if quick else 8)
            run(postgres_restarted_under_watch, data_dir=data_dir, down_s=4.0, alerts=5 if quick else 20,
                quiet=("log",))
            run(postgres_restarted_during_cleanup, data_dir=data_dir, events=20_000 if quick else 100_000,
                batch_size=500, quiet=("first_log",))
            run(postgres_restarted_during_retry, data_dir=data_dir, events=events // 2, restart_after=events // 20,
                down_s=4.0)
            run(postgres_restarted_during_sweep, data_dir=data_dir, events=3000 if quick else 10_000, recorded=100,
                restart_at_request=35 if quick else 120, quiet=("log",))
            run(postgres_restarted_during_reconcile, data_dir=data_dir, registrations=events // 5,
                restart_after=events // 20, quiet=("log",))
        engine.dispose()
    print()
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
