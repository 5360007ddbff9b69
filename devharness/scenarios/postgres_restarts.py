"""PostgreSQL restarted (the embedded server stopped, kept down, started again) under the
receiver (mid-burst, and while it sits idle) and under each job that writes: ``watch``,
``cleanup``, ``retry``, ``sweep`` and ``reconcile``. The restart comes mid-run, when the
process certainly holds a session."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.sql import load_package
from devharness.scenarios.steps import (
    SECRET,
    WEBHOOK_PATH,
    ScenarioResult,
    add_lost_payments,
    add_missed_events,
    add_pending_registrations,
    count_outcomes,
    deliver,
    jobs_command,
    paid_checkouts,
    receiver_process,
    redeliver_until_done,
    run_line,
    run_to_end,
    scratch_engine,
    start_local_stripe,
    stripe_env,
    wait_for_watchers,
    wait_until,
    watch_processes,
)

SQL = load_package("devharness.scenarios", "steps.sql", "postgres_restarts.sql")


def restart_embedded(data_dir: Path, *, down_s: float = 1.0) -> None:
    """Stop the embedded PostgreSQL of ``data_dir`` (fast shutdown: every session is ended,
    open transactions roll back), keep it down ``down_s``, start it again."""
    from core.embedded import embedded_url, stop_embedded

    stop_embedded(data_dir)
    time.sleep(down_s)
    embedded_url(data_dir, keep_running=False)


class RestartAtRequest:
    """A local_stripe fault hook: the ``nth`` request to ``endpoint`` restarts the embedded
    PostgreSQL of ``data_dir`` before it is answered (the job asking is certainly mid-run),
    once. ``restarted`` says whether it happened, ``done_at`` when (monotonic), if it did."""

    def __init__(self, server, endpoint: str, nth: int, data_dir: Path, down_s: float):
        self.server, self.endpoint, self.nth = server, endpoint, nth
        self.data_dir, self.down_s = data_dir, down_s
        self.restarted = threading.Event()
        self.done_at: float | None = None

    def __call__(self, endpoint: str, params: dict[str, Any]) -> None:
        if endpoint == self.endpoint and self.server.faults.counts[endpoint] >= self.nth \
                and not self.restarted.is_set():
            self.restarted.set()
            restart_embedded(self.data_dir, down_s=self.down_s)  # the answer waits meanwhile
            self.done_at = time.monotonic()


def postgres_restarted_under_receiver(database_url: str, data_dir: Path, *, events: int = 300, workers: int = 2,
                                      restart_at: float = 0.3, down_s: float = 2.0, concurrency: int = 16,
                                      deadline_s: float = 60) -> ScenarioResult:
    """Restart PostgreSQL ``restart_at`` of the way into a burst of deliveries to a running
    receiver: deliveries during the outage are refused (503, nothing recorded) or fail
    mid-attempt; the receiver is not restarted, Stripe repeats every delivery not answered
    2xx. Every event must end completed exactly once."""
    engine = scratch_engine(database_url)
    registrations, batch, ids = paid_checkouts(events, "evt_pgrestart_")
    try:
        add_pending_registrations(engine, registrations)
        receiver, url = receiver_process(database_url, workers=workers)
        with receiver:
            answered: dict[str, int] = {}
            restart_now = threading.Event()

            def send(event):
                answered[event["id"]] = deliver(url, event)
                if len(answered) >= int(events * restart_at):
                    restart_now.set()

            with ThreadPoolExecutor(concurrency) as pool:
                futures = [pool.submit(send, e) for e in batch]
                restart_now.wait(60)
                restart_embedded(data_dir, down_s=down_s)
                restarted = time.monotonic()
                for future in futures:
                    future.result()
            statuses = Counter(answered.values())
            unanswered = [e for e in batch if not 200 <= answered.get(e["id"], 0) < 300]
            recover_s, redelivered = redeliver_until_done(url, unanswered, deadline_s=deadline_s)
            recover_s = None if recover_s is None else time.monotonic() - restarted
            leaked_locks = SQL.scalar(engine, "leaked_locks")
        result = count_outcomes(engine, f"PostgreSQL restarted ({down_s:g} s down) under the receiver "
                                        f"({workers} workers) during {events} deliveries", ids, registrations)
        result.recover_s = recover_s
        result.detail.update(answers_during_burst=dict(sorted(statuses.items())), redelivered=redelivered,
                             leaked_locks=leaked_locks)
        return result
    finally:
        engine.dispose()


def postgres_restarted_between_deliveries(database_url: str, data_dir: Path, *, before: int = 12, after: int = 12,
                                          concurrency: int = 4, down_s: float = 1.0) -> ScenarioResult:
    """Restart PostgreSQL while a receiver (one worker) sits idle with connections in its
    pool, then deliver new events at once: each must be answered 200 the first time. The
    pool hands its connections out unchecked (no pre-ping) and the claim finds them closed,
    so it is made again on a new connection (tracking.tracker: EventTracker.begin)."""
    engine = scratch_engine(database_url)
    registrations, batch, ids = paid_checkouts(before + after, "evt_pgidle_")
    try:
        add_pending_registrations(engine, registrations)
        receiver, url = receiver_process(database_url, workers=1)
        with receiver:
            answered: dict[str, int] = {}

            def send(event):
                answered[event["id"]] = deliver(url, event)

            with ThreadPoolExecutor(concurrency) as pool:  # leaves several connections in the pool
                list(pool.map(send, batch[:before]))
                restart_embedded(data_dir, down_s=down_s)
                restarted = time.monotonic()
                list(pool.map(send, batch[before:]))
                answered_after_s = time.monotonic() - restarted
            first_after = Counter(answered[e["id"]] for e in batch[before:])
            # Stripe repeats whatever was not answered 2xx, so a failure here still ends counted.
            unanswered = [e for e in batch if not 200 <= answered[e["id"]] < 300]
            recover_s, redelivered = redeliver_until_done(url, unanswered, deadline_s=30)
            leaked_locks = SQL.scalar(engine, "leaked_locks")
        result = count_outcomes(engine, f"PostgreSQL restarted ({down_s:g} s down) between deliveries to an idle "
                                        f"receiver, {after} new events then", ids, registrations)
        result.detail.update(answers_before=dict(Counter(answered[e["id"]] for e in batch[:before])),
                             first_answers_after=dict(first_after), redelivered=redelivered,
                             leaked_locks=leaked_locks)
        # Recovered once every new event was answered: the deliveries after the restart (and
        # any repeat of one that was not answered 2xx the first time).
        result.recover_s = None if recover_s is None else answered_after_s + recover_s
        return result
    finally:
        engine.dispose()


def postgres_restarted_under_watch(database_url: str, data_dir: Path, *, down_s: float = 2.0, alerts: int = 3,
                                   deadline_s: float = 60) -> ScenarioResult:
    """PostgreSQL restarted under a running ``watch``: it must reconnect by itself and catch
    up, i.e. notify the alerts of failures committed while it was reconnecting (``alerts``
    event types failing right after the restart), each once, plus the one from before."""
    from devharness.http_sink import HttpSink

    engine = scratch_engine(database_url)
    prefix = f"evt_pgwatch_{uuid.uuid4().hex[:8]}_"
    with HttpSink() as sink:
        processes = watch_processes(database_url, 1, extra_env={"MONITOR_ALERT_WEBHOOK_URL": sink.url,
                                                                "MONITOR_ALERT_INTERVAL_S": "2"})
        try:
            wait_for_watchers(engine, processes)
            with engine.begin() as conn:
                SQL.execute(conn, "fail_checkout_event", id=f"{prefix}before", type="checkout.session.before_restart")
            delivered_before = len(sink.wait_for(1, timeout=20))
            restart_embedded(data_dir, down_s=down_s)
            restarted = time.monotonic()
            with engine.begin() as conn:  # failures land before watch is back: it must catch up
                for i in range(alerts):
                    SQL.execute(conn, "fail_checkout_event", id=f"{prefix}{i}", type=f"checkout.session.after_{i}")
            sink.wait_for(1 + alerts, timeout=deadline_s)
            recover_s = time.monotonic() - restarted
            time.sleep(3.0)  # anything sent twice would arrive now
            alive = processes[0].popen.poll() is None
        finally:
            exits = [process.stop() for process in processes]
            log = processes[0].log_tail(400)
            for process in processes:
                process.close()
    engine.dispose()
    sent = Counter((r.json()["alert_id"], r.json()["status"]) for r in sink.received)
    expected = 1 + alerts
    return ScenarioResult(
        f"PostgreSQL restarted ({down_s:g} s down) under watch, {alerts} alerts while it reconnects",
        before=expected, after=len(sent), lost=expected - len(sent), duplicated=sum(n - 1 for n in sent.values()),
        stuck=0, recover_s=recover_s if len(sent) >= expected else None,
        detail={"delivered_before_restart": delivered_before, "watch_alive_after": alive, "watch_exit": exits[0],
                "log": "" if len(sent) >= expected else log})


def postgres_restarted_during_cleanup(database_url: str, data_dir: Path, *, events: int = 50_000,
                                      batch_size: int = 200, down_s: float = 1.0) -> ScenarioResult:
    """Restart PostgreSQL while ``cleanup`` archives old events in batches: the run must end
    with exit 1 and be recorded failed with its reason, its lock must be free, and the next
    run must archive the rest, each event exactly once."""
    engine = scratch_engine(database_url)
    prefix = f"evt_cleanup_{uuid.uuid4().hex[:8]}_"
    try:
        with engine.begin() as conn:
            SQL.execute(conn, "add_old_completed_events", prefix=prefix, n=events, days_ago=200)
        first = jobs_command(database_url, "cleanup", "--skip-registrations", "--batch-size", str(batch_size))
        first.start()
        try:
            # Restart once some batches are in: mid-run, not before or after it.
            wait_until(lambda: SQL.one(engine, "archive_counts", prefix=prefix)["archived"] >= 2 * batch_size, 60,
                       pause_s=0.01)
            archived_at_restart = SQL.one(engine, "archive_counts", prefix=prefix)["archived"]
            restart_embedded(data_dir, down_s=down_s)
            restarted = time.monotonic()
            first_exit = first.wait(120)
            first_log = first.log_tail(600)
        finally:
            first.close()
        engine.dispose()
        runs = SQL.all(engine, "job_runs_of", job="cleanup")
        lock_free = not SQL.scalar(engine, "job_lock_held", job="cleanup")
        second = jobs_command(database_url, "cleanup", "--skip-registrations", "--batch-size", str(batch_size))
        second.start()
        try:
            second_exit = second.wait(300)
        finally:
            second.close()
        recover_s = time.monotonic() - restarted
        counts = SQL.one(engine, "archive_counts", prefix=prefix)
        lost = events - counts["archived_distinct"] - counts["live"]
        duplicated = counts["archived"] - counts["archived_distinct"] + (
            counts["live"] + counts["archived_distinct"] - events if counts["live"] and counts["archived_distinct"] else 0)
        first_run = runs[0] if runs else {}
        result = ScenarioResult(
            f"PostgreSQL restarted ({down_s:g} s down) during cleanup of {events} events",
            before=events, after=counts["archived_distinct"], lost=max(lost, 0), duplicated=duplicated,
            stuck=counts["live"], recover_s=recover_s if second_exit == 0 else None,
            detail={"archived_at_restart": archived_at_restart, "first_exit": first_exit,
                    "first_run": run_line(first_run, 80),
                    "lock_free_after": lock_free, "second_exit": second_exit})
        result.detail["first_log"] = first_log if first_exit != 1 else ""
        return result
    finally:
        engine.dispose()


def postgres_restarted_during_retry(database_url: str, data_dir: Path, *, events: int = 300, workers: int = 2,
                                    restart_after: int = 30, down_s: float = 1.0) -> ScenarioResult:
    """Restart PostgreSQL while ``retry`` re-delivers due failed events through the receiver:
    the run must give its claims back, end with exit 1, recorded failed (its own database
    session died), and the next run (right away, not after the claims' 10-minute lease) must
    complete the rest, each event applied once."""
    engine = scratch_engine(database_url)
    registrations, batch, ids = paid_checkouts(events, "evt_retry_")
    try:
        add_pending_registrations(engine, registrations, failed_events=batch)
        receiver, url = receiver_process(database_url, workers=workers)
        with receiver:
            env = {"MONITOR_REPLAY_URL": url + WEBHOOK_PATH, "STRIPE_WEBHOOK_SECRET": SECRET}
            first = jobs_command(database_url, "retry", "--concurrency", "4", extra_env=env)
            first.start()
            try:
                wait_until(lambda: SQL.scalar(engine, "completed_count", ids=ids) >= restart_after, 60, pause_s=0.01)
                completed_at_restart = SQL.scalar(engine, "completed_count", ids=ids)
                restart_embedded(data_dir, down_s=down_s)
                restarted = time.monotonic()
                first_exit = first.wait(120)
                first_log = first.log_tail(400)
            finally:
                first.close()
            runs = SQL.all(engine, "job_runs_of", job="retry")
            second = jobs_command(database_url, "retry", "--concurrency", "4", extra_env=env)
            second.start()
            try:
                second_exit = second.wait(300)
                second_log = second.log_tail(400)
            finally:
                second.close()
            recover_s = time.monotonic() - restarted
            leaked_locks = SQL.scalar(engine, "leaked_locks")
        result = count_outcomes(engine, f"PostgreSQL restarted ({down_s:g} s down) during retry of {events} "
                                        "failed events", ids, registrations)
        first_run = runs[0] if runs else {}
        result.recover_s = recover_s if result.ok else None
        result.detail.update(completed_at_restart=completed_at_restart, first_exit=first_exit,
                             first_run=run_line(first_run, 80),
                             second_exit=second_exit, leaked_locks=leaked_locks)
        if not result.ok:
            result.detail.update(first_log=first_log, second_log=second_log)
        return result
    finally:
        engine.dispose()


def postgres_restarted_during_sweep(database_url: str, data_dir: Path, *, events: int = 3000, recorded: int = 100,
                                    restart_at_request: int = 35, down_s: float = 1.0) -> ScenarioResult:
    """PostgreSQL restarted while ``python -m jobs sweep`` reads Stripe's events: the restart
    runs inside local_stripe's answer to list request number ``restart_at_request`` (so the
    sweep certainly is mid-run, holding its lock). The run must end with exit 1, recorded
    failed with its reason (it lost its session and its lock), its lock free; the next run
    records every missed event, none twice."""
    from local_stripe.fault_injection import LIST_EVENTS

    engine = scratch_engine(database_url)
    prefix = f"evt_pgsweep_{uuid.uuid4().hex[:8]}_"
    server = start_local_stripe()
    try:
        missed = add_missed_events(engine, server, prefix, events=events, recorded=recorded)
        restart = RestartAtRequest(server, LIST_EVENTS, restart_at_request, data_dir, down_s)
        server.faults.before(restart)
        env = stripe_env(server)
        first_exit, first_log = run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env)
        engine.dispose()
        recorded_by_first = SQL.one(engine, "missed_counts", prefix=prefix)["recorded"]
        lock_free = not SQL.scalar(engine, "job_lock_held", job="sweep")
        server.faults.reset()
        second_started = time.monotonic()
        second_exit, second_log = run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env)
        recover_s = time.monotonic() - (restart.done_at or second_started)
        counts = SQL.one(engine, "missed_counts", prefix=prefix)
        runs = SQL.all(engine, "job_runs_of", job="sweep")
        sweep_runs = SQL.all(engine, "sweep_run_statuses")
        first_run = runs[0] if runs else {}
        return ScenarioResult(
            f"PostgreSQL restarted ({down_s:g} s down) during sweep ({missed} missed events of {events})",
            before=missed, after=counts["recorded_distinct"], lost=max(missed - counts["recorded_distinct"], 0),
            duplicated=counts["recorded"] - counts["recorded_distinct"],
            stuck=SQL.scalar(engine, "running_job_runs"),
            recover_s=recover_s if second_exit in (0, 3) else None,
            detail={"restarted_mid_run": restart.restarted.is_set(), "first_exit": first_exit,
                    "first_run": run_line(first_run, 120),
                    "first_sweep_run": sweep_runs[0]["status"] if sweep_runs else None,
                    "recorded_by_first": recorded_by_first, "lock_free_after": lock_free,
                    "second_exit": second_exit, "second_s": round(time.monotonic() - second_started, 1),
                    "log": "" if first_exit == 1 and second_exit in (0, 3) else first_log + " / " + second_log})
    finally:
        server.stop()
        engine.dispose()


def postgres_restarted_during_reconcile(database_url: str, data_dir: Path, *, registrations: int = 60,
                                        restart_after: int = 20, down_s: float = 1.0) -> ScenarioResult:
    """PostgreSQL restarted while ``python -m jobs reconcile`` fixes lost payments: the restart
    runs inside local_stripe's answer to the ``restart_after``-th session it re-reads before a
    fix (the run certainly mid-way). The run must stop there with exit 1, recorded failed
    with its reason, its lock free, the fixes made before kept; the next run fixes the rest,
    none twice."""
    from local_stripe.fault_injection import RETRIEVE_SESSION

    engine = scratch_engine(database_url)
    server = start_local_stripe()
    try:
        ids = add_lost_payments(engine, server, registrations)
        restart = RestartAtRequest(server, RETRIEVE_SESSION, restart_after, data_dir, down_s)
        server.faults.before(restart)
        env = stripe_env(server)
        first_exit, first_log = run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env)
        engine.dispose()
        fixed_by_first = SQL.one(engine, "reconcile_fix_counts", ids=ids)["completed"]
        lock_free = not SQL.scalar(engine, "job_lock_held", job="reconcile")
        server.faults.reset()
        second_started = time.monotonic()
        second_exit, second_log = run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env)
        recover_s = time.monotonic() - (restart.done_at or second_started)
        counts = SQL.one(engine, "reconcile_fix_counts", ids=ids)
        runs = SQL.all(engine, "job_runs_of", job="reconcile")
        reconciliation_runs = SQL.all(engine, "reconciliation_run_statuses")
        first_run = runs[0] if runs else {}
        return ScenarioResult(
            f"PostgreSQL restarted ({down_s:g} s down) mid-reconcile ({registrations} lost payments)",
            before=registrations, after=counts["completed"], lost=registrations - counts["completed"],
            duplicated=counts["fixes"] - counts["fixed_distinct"], stuck=SQL.scalar(engine, "running_job_runs"),
            recover_s=recover_s if second_exit == 0 else None,
            detail={"restarted_mid_run": restart.restarted.is_set(), "first_exit": first_exit,
                    "first_run": run_line(first_run, 120),
                    "first_reconciliation_run": reconciliation_runs[0]["status"] if reconciliation_runs else None,
                    "fixed_by_first": fixed_by_first, "lock_free_after": lock_free, "second_exit": second_exit,
                    "second_s": round(time.monotonic() - second_started, 1),
                    "log": "" if first_exit == 1 and second_exit == 0 else first_log + " / " + second_log})
    finally:
        server.stop()
        engine.dispose()
