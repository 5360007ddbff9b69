"""Stripe down or faulty while ``sweep`` and ``reconcile`` read it: a local_stripe server
answering 500 or 429 to a run of requests, or holding them unanswered past the jobs'
timeout."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from core.sql import load_package
from devharness.scenarios.steps import (
    ScenarioResult,
    add_lost_payments,
    add_missed_events,
    run_line,
    run_to_end,
    scratch_engine,
    start_local_stripe,
    stripe_env,
)

SQL = load_package("devharness.scenarios", "steps.sql")


def _stripe_fault(*, status: int, failures: int, hang_s: float | None, timeout_s: int | None) -> str:
    """How a Stripe-outage scenario's row names its fault."""
    if hang_s is not None:
        return (f"Stripe not answering {failures} request{'s' if failures != 1 else ''} "
                f"({hang_s:g} s each, timeout {timeout_s} s)")
    return f"Stripe answering {status} to {failures} requests"


def stripe_failing_during_sweep(database_url: str, *, status: int = 500, failures: int = 20, events: int = 50,
                                recorded: int = 10, hang_s: float | None = None,
                                timeout_s: int | None = None) -> ScenarioResult:
    """Stripe answers ``status`` (500 or 429) to the next ``failures`` Events API requests while
    ``python -m jobs sweep`` runs (a local Stripe server on 127.0.0.1, the job a real process).

    ``events`` events of the last hour exist at Stripe; the app recorded ``recorded`` of them,
    so the rest are missed. A run whose retries the outage outlasts must exit 1 and be
    recorded failed with nothing recorded as found; then Stripe is back (the queued failures
    cleared) and the next run records every missed event once. An outage shorter than the
    bounded retries is ridden out by the first run. Counts: before/after are the missed
    events at Stripe / recorded; requests made during the outage show the retries are bounded.

    ``hang_s``: instead of answering ``status``, Stripe holds each of the ``failures`` requests
    that long (a Stripe that does not answer); the jobs wait ``timeout_s``
    (STRIPE_TIMEOUT_SECONDS) for each.
    """
    from local_stripe.fault_injection import LIST_EVENTS

    engine = scratch_engine(database_url)
    prefix = f"evt_stripe_{status}_{uuid.uuid4().hex[:8]}_"
    server = start_local_stripe()
    try:
        missed = add_missed_events(engine, server, prefix, events=events, recorded=recorded)
        env = stripe_env(server)
        if timeout_s is not None:
            env["STRIPE_TIMEOUT_SECONDS"] = str(timeout_s)
        if hang_s is not None:
            server.faults.hang_next(failures, seconds=hang_s, endpoint=LIST_EVENTS)
        else:
            server.faults.fail_next(failures, status=status, endpoint=LIST_EVENTS)
        started = time.monotonic()
        first_exit, _ = run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env, timeout_s=180)
        first_s = time.monotonic() - started
        requests_first = server.faults.counts[LIST_EVENTS]
        failures_left = server.faults.failures_left + server.faults.hangs_left
        server.faults.reset()  # Stripe is back
        recorded_after_first = SQL.one(engine, "missed_counts", prefix=prefix)["recorded"]
        cleared = time.monotonic()
        second_exit, _ = run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env, timeout_s=180)
        recover_s = time.monotonic() - cleared
        counts = SQL.one(engine, "missed_counts", prefix=prefix)
        runs = SQL.all(engine, "job_runs_of", job="sweep")[-2:]
        first_run, second_run = (runs + [{}, {}])[:2]
        # A first run that exited 1 but was recorded a success, or recorded found events
        # although it failed, counts as lost trust: reported in the detail and checked by tests.
        fault = _stripe_fault(status=status, failures=failures, hang_s=hang_s, timeout_s=timeout_s)
        return ScenarioResult(
            f"{fault} during sweep ({missed} missed events)",
            before=missed, after=counts["recorded_distinct"],
            lost=max(missed - counts["recorded_distinct"], 0),
            duplicated=counts["recorded"] - counts["recorded_distinct"],
            stuck=0, recover_s=recover_s if second_exit in (0, 3) else None,
            detail={"first_exit": first_exit, "first_s": round(first_s, 1),
                    "first_run": run_line(first_run, 90),
                    "requests_during_outage": requests_first, "failures_left": failures_left,
                    "recorded_by_first": recorded_after_first, "second_exit": second_exit,
                    "second_run": second_run.get("status"),
                    "lock_free_after": not SQL.scalar(engine, "job_lock_held", job="sweep")})
    finally:
        server.stop()
        engine.dispose()


def stripe_failing_during_reconcile(database_url: str, *, status: int = 500, failures: int = 20,
                                    registrations: int = 30, fail_after: int = 10, hang_s: float | None = None,
                                    timeout_s: int | None = None) -> ScenarioResult:
    """Stripe starts answering ``status`` to ``failures`` requests once ``python -m jobs
    reconcile`` has re-read ``fail_after`` sessions for its fixes (mid-run). ``registrations``
    are pending locally while their sessions are paid at Stripe (lost webhooks: auto-fixes).
    The run the outage outlasts must exit 1, be recorded failed, keep the fixes it made
    (each in its own transaction); the next run fixes the rest, none twice. ``hang_s``: the
    requests are held that long instead (see :func:`stripe_failing_during_sweep`)."""
    from local_stripe.fault_injection import RETRIEVE_SESSION

    engine = scratch_engine(database_url)
    server = start_local_stripe()
    try:
        ids = add_lost_payments(engine, server, registrations)
        outage = threading.Event()

        def start_outage(endpoint: str, params: dict[str, Any]) -> None:
            if endpoint == RETRIEVE_SESSION and server.faults.counts[RETRIEVE_SESSION] >= fail_after \
                    and not outage.is_set():
                outage.set()
                if hang_s is not None:
                    server.faults.hang_next(failures, seconds=hang_s)
                else:
                    server.faults.fail_next(failures, status=status)

        server.faults.before(start_outage)
        env = stripe_env(server)
        if timeout_s is not None:
            env["STRIPE_TIMEOUT_SECONDS"] = str(timeout_s)
        started = time.monotonic()
        first_exit, _ = run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env, timeout_s=180)
        first_s = time.monotonic() - started
        requests_first = server.faults.total
        failures_left = server.faults.failures_left + server.faults.hangs_left
        fixed_by_first = SQL.one(engine, "reconcile_fix_counts", ids=ids)["completed"]
        server.faults.reset()  # Stripe is back
        cleared = time.monotonic()
        second_exit, _ = run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env, timeout_s=180)
        recover_s = time.monotonic() - cleared
        counts = SQL.one(engine, "reconcile_fix_counts", ids=ids)
        runs = SQL.all(engine, "job_runs_of", job="reconcile")[-2:]
        first_run, second_run = (runs + [{}, {}])[:2]
        fault = _stripe_fault(status=status, failures=failures, hang_s=hang_s, timeout_s=timeout_s)
        return ScenarioResult(
            f"{fault} mid-reconcile ({registrations} lost payments)",
            before=registrations, after=counts["completed"], lost=registrations - counts["completed"],
            duplicated=counts["fixes"] - counts["fixed_distinct"], stuck=0,
            recover_s=recover_s if second_exit == 0 else None,
            detail={"first_exit": first_exit, "first_s": round(first_s, 1), "outage_started": outage.is_set(),
                    "first_run": run_line(first_run, 90),
                    "requests_first_run": requests_first, "failures_left": failures_left,
                    "fixed_by_first": fixed_by_first, "second_exit": second_exit,
                    "second_run": second_run.get("status"),
                    "lock_free_after": not SQL.scalar(engine, "job_lock_held", job="reconcile")})
    finally:
        server.stop()
        engine.dispose()
