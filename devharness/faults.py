"""Fault scenarios run against real processes, shared by the test suite and ``bench/faults.py``.

Each scenario sets up real servers (the reference receiver under uvicorn with its workers,
the database it is given), injects one fault the way production meets it (a SIGKILL, not
an exception raised on purpose), lets the system recover as it would by itself (Stripe
repeating its deliveries), and returns a :class:`ScenarioResult` that counts what was lost
or duplicated. Tests assert on the counts; the bench prints them as a table.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.db import normalise_url
from core.sql import load_package
from devharness.ports import listening_socket, socket_url
from devharness.process import ManagedProcess, http_ready
from local_stripe.objects import checkout_session_event
from tracking.signing import stripe_signature

SQL = load_package("devharness", "faults.sql")
REPO = Path(__file__).resolve().parent.parent
SECRET = "whsec_fault_scenarios"
WEBHOOK_PATH = "/stripe/webhook"


@dataclass
class ScenarioResult:
    """One row of the table: what was there before and after, and what went wrong."""

    scenario: str
    before: int  # events (or rows) the scenario started with / sent
    after: int  # of those, in their final state once recovered
    lost: int
    duplicated: int
    stuck: int  # left 'processing' (or a job left running) after recovery
    recover_s: float | None  # from the restart (fault cleared) to everything in its final state
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.stuck == 0 and self.after == self.before


# --- the receiver as deployed ---------------------------------------------------------------

def receiver_process(database_url: str, *, workers: int = 2, extra_env: Mapping[str, str] | None = None,
                     name: str = "receiver") -> tuple[ManagedProcess, str]:
    """``uvicorn tracking.receiver:app --workers N`` on a loopback socket bound beforehand; its URL."""
    sock = listening_socket(backlog=1024)
    url = socket_url(sock)
    command = [sys.executable, "-m", "uvicorn", "tracking.receiver:app", "--fd", str(sock.fileno()),
               "--log-level", "warning"]
    if workers > 1:
        command += ["--workers", str(workers)]
    env = {"DATABASE_URL": database_url, "STRIPE_WEBHOOK_SECRET": SECRET, "DASHBOARD_DATABASE_URL": None,
           **(extra_env or {})}
    return ManagedProcess(command, name=name, cwd=REPO, extra_env=env, pass_sockets=[sock],
                          ready=http_ready(url + "/healthz"), timeout_s=60), url


def deliver(url: str, event: Mapping[str, Any], *, timeout_s: float = 15) -> int:
    """POST the event signed as Stripe signs it; the status code, or 0 when no answer came."""
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json",
               "Stripe-Signature": stripe_signature(body, SECRET, timestamp=int(time.time()))}
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.request("POST", WEBHOOK_PATH, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):  # refused, reset, cut short, timed out: it is gone
        return 0
    finally:
        conn.close()


def redeliver_until_done(url: str, events: list[Mapping[str, Any]], *, deadline_s: float,
                         concurrency: int = 8, pause_s: float = 0.2) -> tuple[float | None, int]:
    """Deliver every event again, as Stripe does, repeating those not answered 2xx (409 in
    progress, 5xx, no answer) until all are or ``deadline_s`` passes. (seconds taken or None,
    deliveries sent)."""
    started = time.monotonic()
    pending = list(events)
    sent = 0
    with ThreadPoolExecutor(concurrency) as pool:
        while pending:
            statuses = list(pool.map(lambda e: deliver(url, e), pending))
            sent += len(pending)
            pending = [e for e, status in zip(pending, statuses) if not 200 <= status < 300]
            if not pending:
                break
            if time.monotonic() - started > deadline_s:
                return None, sent
            time.sleep(pause_s)
    return time.monotonic() - started, sent


# --- scenario: the receiver killed during a burst ---------------------------------------------

# A receiver to start under a name: its process, and its URL once started.
Serve = Callable[[str], "tuple[ManagedProcess, Callable[[], str]]"]


def python_receiver(database_url: str, *, workers: int = 2,
                    extra_env: Mapping[str, str] | None = None) -> Serve:
    """``receiver_process`` as a :data:`Serve`: the reference receiver under uvicorn."""
    def serve(name: str) -> tuple[ManagedProcess, Callable[[], str]]:
        process, url = receiver_process(database_url, workers=workers, extra_env=extra_env, name=name)
        return process, lambda: url
    return serve


def receiver_killed_mid_burst(database_url: str, *, events: int = 200, workers: int = 2,
                              kill_at: float = 0.2, held: int = 3, concurrency: int = 16,
                              deadline_s: float = 60, extra_env: Mapping[str, str] | None = None,
                              serve: Serve | None = None) -> ScenarioResult:
    """SIGKILL the receiver (supervisor and workers) ``kill_at`` of the way into a burst of
    paid-checkout deliveries, restart it, and repeat every delivery not answered 2xx.
    ``serve``: another receiver signing with ``SECRET`` (default: the reference receiver with
    ``workers`` and ``extra_env``), e.g. the Edge Function (devharness.edge_function).

    ``held`` registrations are locked by the scenario before the burst, so that many
    attempts are certainly mid-way (inside PostgreSQL, holding their event) when the kill
    comes; the locks are let go right after it. Every event must end completed exactly once
    and every registration completed, within ``deadline_s`` of the restart.
    """
    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    registrations = [str(uuid.uuid4()) for _ in range(events)]
    batch = [checkout_session_event("checkout.session.completed", registration_id=rid,
                                    event_id=f"evt_fault_{uuid.uuid4().hex[:20]}") for rid in registrations]
    ids = [e["id"] for e in batch]
    try:
        with engine.begin() as conn:
            for rid in registrations:
                SQL.execute(conn, "add_pending_registration", id=rid, email=f"{rid[:8]}@example.com")
        blocker = engine.connect()
        blocker.begin()
        SQL.all(blocker, "lock_registrations", ids=registrations[:held])
        answered: dict[str, int] = {}
        killed_at_answer = max(held + 1, int(events * kill_at))
        serve = serve or python_receiver(database_url, workers=workers, extra_env=extra_env)
        receiver, url_of = serve("receiver")
        processing_at_kill = 0
        with receiver:
            url = url_of()
            kill_now = threading.Event()

            def send(event):
                answered[event["id"]] = deliver(url, event)
                if len(answered) >= killed_at_answer:
                    kill_now.set()

            with ThreadPoolExecutor(concurrency) as pool:
                # The held events first, so they are certainly in flight at the kill.
                futures = [pool.submit(send, e) for e in batch]
                # Wait for the held attempts to hold their events, and for the burst's share.
                wait_until(lambda: SQL.scalar(engine, "held_attempts", ids=ids[:held]) == held, 30)
                kill_now.wait(60)
                receiver.kill_tree()
                for future in futures:
                    future.result()
            blocker.rollback()  # the killed workers' statements end; their sessions with them
            blocker.close()
            processing_at_kill = SQL.scalar(engine, "processing_events", ids=ids)
        unanswered = [e for e in batch if not 200 <= answered.get(e["id"], 0) < 300]
        restarted, url_of = serve("receiver-restarted")
        with restarted:
            url = url_of()
            recover_s, redelivered = redeliver_until_done(url, unanswered, deadline_s=deadline_s)
            # Every attempt has answered: a lock still held now would be a leak in a live worker.
            leaked_locks = SQL.scalar(engine, "leaked_locks")
        result = count_outcomes(engine, "receiver SIGKILL mid-burst + redelivery", ids, registrations)
        result.recover_s = recover_s
        result.detail.update(workers=workers, processing_at_kill=processing_at_kill,
                             unanswered_at_kill=len(unanswered), redelivered=redelivered,
                             leaked_locks=leaked_locks)
        return result
    finally:
        engine.dispose()


def count_outcomes(engine: sa.Engine, scenario: str, ids: list[str], registrations: list[str]) -> ScenarioResult:
    """Lost: an event with no row or not completed, or a registration not completed.
    Duplicated: an event with more than one row or more than one completed attempt, or a
    registration named by more than one completed event."""
    outcomes = SQL.all(engine, "event_outcomes", ids=ids)
    states = SQL.all(engine, "registration_states", ids=registrations)
    completed = sum(1 for o in outcomes if o["status"] == "completed" and o["completed_attempts"] == 1)
    lost_events = sum(1 for o in outcomes if o["rows"] == 0 or o["status"] not in ("completed", "processing"))
    lost_registrations = sum(1 for s in states if s["processing_status"] != "completed") + (len(registrations) - len(states))
    duplicated = (sum(1 for o in outcomes if o["rows"] > 1 or o["completed_attempts"] > 1)
                  + sum(1 for s in states if s["completed_events"] > 1))
    stuck = sum(1 for o in outcomes if o["status"] == "processing")
    return ScenarioResult(scenario, before=len(ids), after=completed, lost=lost_events + lost_registrations,
                          duplicated=duplicated, stuck=stuck, recover_s=None,
                          detail={"registrations_completed": len(states) - lost_registrations})


def wait_until(condition, timeout_s: float, pause_s: float = 0.05) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(pause_s)
    return bool(condition())


# --- scenario: PostgreSQL restarted under a job -----------------------------------------------

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


def jobs_command(database_url: str, *args: str, extra_env: Mapping[str, str] | None = None) -> ManagedProcess:
    """``python -m jobs ARGS`` as a managed child process (started by the caller)."""
    env = {"DATABASE_URL": database_url, "DASHBOARD_DATABASE_URL": None, **(extra_env or {})}
    return ManagedProcess([sys.executable, "-m", "jobs", *args], name=f"jobs-{args[0]}", cwd=REPO,
                          extra_env=env, stop_timeout_s=30)


def postgres_restarted_during_cleanup(database_url: str, data_dir: Path, *, events: int = 50_000,
                                      batch_size: int = 200, down_s: float = 1.0) -> ScenarioResult:
    """Restart PostgreSQL while ``cleanup`` archives old events in batches: the run must end
    with exit 1 and be recorded failed with its reason, its lock must be free, and the next
    run must archive the rest, each event exactly once."""
    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
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
                    "first_run": f"{first_run.get('status')}: {(first_run.get('error') or '')[:80]}",
                    "lock_free_after": lock_free, "second_exit": second_exit})
        result.detail["first_log"] = first_log if first_exit != 1 else ""
        return result
    finally:
        engine.dispose()


def postgres_restarted_under_receiver(database_url: str, data_dir: Path, *, events: int = 300, workers: int = 2,
                                      restart_at: float = 0.3, down_s: float = 2.0, concurrency: int = 16,
                                      deadline_s: float = 60) -> ScenarioResult:
    """Restart PostgreSQL ``restart_at`` of the way into a burst of deliveries to a running
    receiver: deliveries during the outage are refused (503, nothing recorded) or fail
    mid-attempt; the receiver is not restarted, Stripe repeats every delivery not answered
    2xx. Every event must end completed exactly once."""
    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    registrations = [str(uuid.uuid4()) for _ in range(events)]
    batch = [checkout_session_event("checkout.session.completed", registration_id=rid,
                                    event_id=f"evt_pgrestart_{uuid.uuid4().hex[:20]}") for rid in registrations]
    ids = [e["id"] for e in batch]
    try:
        with engine.begin() as conn:
            for rid in registrations:
                SQL.execute(conn, "add_pending_registration", id=rid, email=f"{rid[:8]}@example.com")
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


def postgres_restarted_during_retry(database_url: str, data_dir: Path, *, events: int = 300, workers: int = 2,
                                    restart_after: int = 30, down_s: float = 1.0) -> ScenarioResult:
    """Restart PostgreSQL while ``retry`` re-delivers due failed events through the receiver:
    the run must give its claims back, end with exit 1, recorded failed (its own database
    session died), and the next run (right away, not after the claims' 10-minute lease) must
    complete the rest, each event applied once."""
    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    registrations = [str(uuid.uuid4()) for _ in range(events)]
    batch = [checkout_session_event("checkout.session.completed", registration_id=rid,
                                    event_id=f"evt_retry_{uuid.uuid4().hex[:20]}") for rid in registrations]
    ids = [e["id"] for e in batch]
    try:
        with engine.begin() as conn:
            for rid, event in zip(registrations, batch):
                SQL.execute(conn, "add_pending_registration", id=rid, email=f"{rid[:8]}@example.com")
                SQL.execute(conn, "add_failed_event", id=event["id"], type=event["type"], payload=json.dumps(event))
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
                             first_run=f"{first_run.get('status')}: {(first_run.get('error') or '')[:80]}",
                             second_exit=second_exit, leaked_locks=leaked_locks)
        if not result.ok:
            result.detail.update(first_log=first_log, second_log=second_log)
        return result
    finally:
        engine.dispose()


# --- Stripe failing for a while ----------------------------------------------------------

def _run_to_end(database_url: str, *args: str, env: Mapping[str, str], timeout_s: float = 300) -> tuple[int, str]:
    """``python -m jobs ARGS`` to its end: (exit code, the end of its output)."""
    process = jobs_command(database_url, *args, extra_env=env)
    process.start()
    try:
        code = process.wait(timeout_s)
        return code, process.log_tail(500)
    finally:
        process.close()


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
    from local_stripe import LocalStripe, StripeState, checkout_session, event
    from local_stripe.fault_injection import LIST_EVENTS

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    prefix = f"evt_stripe_{status}_{uuid.uuid4().hex[:8]}_"
    api_key = "sk_test_faultscenarios000000000000"
    server = LocalStripe(StripeState(), api_keys={api_key}).start()
    try:
        created = int(time.time()) - 600
        for i in range(events):
            server.state.add_event(event("checkout.session.completed", checkout_session(created=created),
                                         id=f"{prefix}{i:05d}", created=created, pending_webhooks=1,
                                         delivery_success=False))
        with engine.begin() as conn:
            for i in range(recorded):
                SQL.execute(conn, "add_recorded_event", stripe_event_id=f"{prefix}{i:05d}")
        missed = events - recorded
        env = {"STRIPE_API_BASE": server.url, "STRIPE_API_KEY": api_key}
        if timeout_s is not None:
            env["STRIPE_TIMEOUT_SECONDS"] = str(timeout_s)
        if hang_s is not None:
            server.faults.hang_next(failures, seconds=hang_s, endpoint=LIST_EVENTS)
        else:
            server.faults.fail_next(failures, status=status, endpoint=LIST_EVENTS)
        started = time.monotonic()
        first_exit, _ = _run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env, timeout_s=180)
        first_s = time.monotonic() - started
        requests_first = server.faults.counts[LIST_EVENTS]
        failures_left = server.faults.failures_left + server.faults.hangs_left
        server.faults.reset()  # Stripe is back
        recorded_after_first = SQL.one(engine, "missed_counts", prefix=prefix)["recorded"]
        cleared = time.monotonic()
        second_exit, _ = _run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env, timeout_s=180)
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
                    "first_run": f"{first_run.get('status')}: {(first_run.get('error') or '')[:90]}",
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
    from local_stripe import LocalStripe, StripeState, checkout_session
    from local_stripe.fault_injection import RETRIEVE_SESSION

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    api_key = "sk_test_faultscenarios000000000000"
    server = LocalStripe(StripeState(), api_keys={api_key}).start()
    ids = [str(uuid.uuid4()) for _ in range(registrations)]
    try:
        created = int(time.time()) - 3600
        with engine.begin() as conn:
            for reg_id in ids:
                session_id = f"cs_test_{uuid.uuid4().hex}"
                server.state.add_checkout_session(checkout_session(id=session_id, created=created,
                                                                   client_reference_id=reg_id))
                SQL.execute(conn, "add_pending_registration_with_session", id=reg_id, session_id=session_id)
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
        env = {"STRIPE_API_BASE": server.url, "STRIPE_API_KEY": api_key}
        if timeout_s is not None:
            env["STRIPE_TIMEOUT_SECONDS"] = str(timeout_s)
        started = time.monotonic()
        first_exit, _ = _run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env, timeout_s=180)
        first_s = time.monotonic() - started
        requests_first = server.faults.total
        failures_left = server.faults.failures_left + server.faults.hangs_left
        fixed_by_first = SQL.one(engine, "reconcile_fix_counts", ids=ids)["completed"]
        server.faults.reset()  # Stripe is back
        cleared = time.monotonic()
        second_exit, _ = _run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env, timeout_s=180)
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
                    "first_run": f"{first_run.get('status')}: {(first_run.get('error') or '')[:90]}",
                    "requests_first_run": requests_first, "failures_left": failures_left,
                    "fixed_by_first": fixed_by_first, "second_exit": second_exit,
                    "second_run": second_run.get("status"),
                    "lock_free_after": not SQL.scalar(engine, "job_lock_held", job="reconcile")})
    finally:
        server.stop()
        engine.dispose()


# --- a notification channel down during an incident, two watch processes -------------------

def watch_processes(database_url: str, count: int, *, extra_env: Mapping[str, str]) -> list[ManagedProcess]:
    """``count`` started ``python -m jobs watch`` processes (as on two machines)."""
    processes = []
    for n in range(count):
        process = jobs_command(database_url, "watch", extra_env=extra_env)
        process.name = f"watch-{n}"
        processes.append(process.start())
    return processes


def channel_down_during_incident(database_url: str, *, alerts: int = 5, watchers: int = 2, down_s: float = 5.0,
                                 deadline_s: float = 60) -> ScenarioResult:
    """An incident (``alerts`` failed checkout event types: one alert each) while the alert
    webhook answers 503 for ``down_s``, with ``watchers`` watch processes running. Each alert
    must be recorded at once, its firing notification delivered once when the channel is back,
    and the resolved one (after the events are fixed) once too."""
    from devharness.http_sink import HttpSink

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    env = {"MONITOR_ALERT_WEBHOOK_URL": None, "MONITOR_ALERT_INTERVAL_S": "1"}
    prefix = f"evt_incident_{uuid.uuid4().hex[:8]}_"
    with HttpSink(status=503) as sink:
        env["MONITOR_ALERT_WEBHOOK_URL"] = sink.url
        processes = watch_processes(database_url, watchers, extra_env=env)
        try:
            if not wait_until(lambda: SQL.scalar(engine, "watchers_listening") >= watchers, 30):
                raise RuntimeError("watch processes did not start: " + processes[0].log_tail(600))
            ids = []
            with engine.begin() as conn:
                for i in range(alerts):
                    ids.append(f"{prefix}{i}")
                    SQL.execute(conn, "fail_checkout_event", id=ids[-1], type=f"checkout.session.incident_{i}")
            # The alerts are recorded and their notifications tried (and failed) while it is down.
            tried = wait_until(lambda: sink.attempts >= alerts, 30)
            time.sleep(down_s)
            states_down = {f"{r['kind']}/{r['status']}": r["n"] for r in SQL.all(engine, "alert_notification_states")}
            attempts_down = sink.attempts
            sink.status = 200  # the channel is back
            back = time.monotonic()
            wait_until(lambda: len({r.json()["alert_id"] for r in sink.received}) >= alerts, deadline_s, pause_s=0.1)
            recover_s = time.monotonic() - back
            with engine.begin() as conn:
                SQL.execute(conn, "complete_events", ids=ids)
            wait_until(lambda: len(sink.received) >= 2 * alerts, deadline_s, pause_s=0.1)
            time.sleep(3.0)  # anything sent twice would arrive now
        finally:
            exits = [process.stop() for process in processes]
            for process in processes:
                process.close()
    bodies = [r.json() for r in sink.received]
    sent = Counter((b["alert_id"], b["status"]) for b in bodies)
    firing = {a for a, status in sent if status == "firing"}
    resolved = {a for a, status in sent if status == "resolved"}
    states = {f"{r['kind']}/{r['status']}": r["n"] for r in SQL.all(engine, "alert_notification_states")}
    engine.dispose()
    return ScenarioResult(
        f"alert webhook answering 503 for {down_s:g} s during an incident of {alerts} alerts, {watchers} watch processes",
        before=2 * alerts, after=len(firing) + len(resolved),
        lost=2 * alerts - len(firing) - len(resolved),
        duplicated=sum(n - 1 for n in sent.values()), stuck=sum(n for k, n in states.items() if not k.endswith("/sent")),
        recover_s=recover_s if len(firing) == alerts else None,
        detail={"tried_while_down": tried, "attempts_while_down": attempts_down, "while_down": states_down,
                "firing_delivered": len(firing), "resolved_delivered": len(resolved), "watch_exits": exits})


def postgres_restarted_under_watch(database_url: str, data_dir: Path, *, down_s: float = 2.0, alerts: int = 3,
                                   deadline_s: float = 60) -> ScenarioResult:
    """PostgreSQL restarted under a running ``watch``: it must reconnect by itself and catch
    up, i.e. notify the alerts of failures committed while it was reconnecting (``alerts``
    event types failing right after the restart), each once, plus the one from before."""
    from devharness.http_sink import HttpSink

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    prefix = f"evt_pgwatch_{uuid.uuid4().hex[:8]}_"
    with HttpSink() as sink:
        processes = watch_processes(database_url, 1, extra_env={"MONITOR_ALERT_WEBHOOK_URL": sink.url,
                                                                "MONITOR_ALERT_INTERVAL_S": "2"})
        try:
            if not wait_until(lambda: SQL.scalar(engine, "watchers_listening") >= 1, 30):
                raise RuntimeError("watch did not start: " + processes[0].log_tail(600))
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


def two_schedulers(database_url: str, *, fire_times: int = 2, job: str = "health-snapshot") -> ScenarioResult:
    """Two ``python -m jobs schedule`` processes (two machines) with ``job`` due every minute,
    kept running over ``fire_times`` minute boundaries: each fire time must run the job once.
    Takes about ``fire_times`` minutes (cron times have minute resolution): bench only."""
    from datetime import datetime, timezone

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    env = {"MONITOR_SCHEDULE": f"{job}=* * * * *", "MONITOR_SCHEDULE_TIMEZONE": "UTC"}
    started = datetime.now(timezone.utc)
    processes = []
    for n in range(2):
        process = jobs_command(database_url, "schedule", extra_env=env)
        process.name = f"schedule-{n}"
        processes.append(process.start())
    try:
        # until the fire_times-th minute boundary after the start has passed, plus the run
        boundary = (started.replace(second=0, microsecond=0).timestamp() + 60 * fire_times)
        time.sleep(max(0.0, boundary - time.time()) + 8.0)
        alive = [process.popen.poll() is None for process in processes]
    finally:
        exits = [process.stop() for process in processes]
        logs = [process.log_tail(300) for process in processes]
        for process in processes:
            process.close()
    runs = {r["status"]: r["n"] for r in SQL.all(engine, "job_runs_since", job=job, since=started)}
    engine.dispose()
    total = sum(runs.values())
    return ScenarioResult(
        f"two schedule processes, {job} due every minute, {fire_times} fire times",
        before=fire_times, after=min(total, fire_times), lost=max(fire_times - total, 0),
        duplicated=max(total - fire_times, 0), stuck=runs.get("running", 0), recover_s=None if total < fire_times else 0.0,
        detail={"runs": runs, "both_alive": all(alive), "exits": exits,
                "logs": "" if total == fire_times else " / ".join(logs)})


# --- PostgreSQL restarted under the jobs that read Stripe ------------------------------------

def postgres_restarted_during_sweep(database_url: str, data_dir: Path, *, events: int = 3000, recorded: int = 100,
                                    restart_at_request: int = 35, down_s: float = 1.0) -> ScenarioResult:
    """PostgreSQL restarted while ``python -m jobs sweep`` reads Stripe's events: the restart
    runs inside local_stripe's answer to list request number ``restart_at_request`` (so the
    sweep certainly is mid-run, holding its lock). The run must end with exit 1, recorded
    failed with its reason (it lost its session and its lock), its lock free; the next run
    records every missed event, none twice."""
    from local_stripe import LocalStripe, StripeState, checkout_session, event
    from local_stripe.fault_injection import LIST_EVENTS

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    prefix = f"evt_pgsweep_{uuid.uuid4().hex[:8]}_"
    api_key = "sk_test_faultscenarios000000000000"
    server = LocalStripe(StripeState(), api_keys={api_key}).start()
    try:
        created = int(time.time()) - 600
        for i in range(events):
            server.state.add_event(event("checkout.session.completed", checkout_session(created=created),
                                         id=f"{prefix}{i:05d}", created=created, pending_webhooks=1,
                                         delivery_success=False))
        with engine.begin() as conn:
            for i in range(recorded):
                SQL.execute(conn, "add_recorded_event", stripe_event_id=f"{prefix}{i:05d}")
        missed = events - recorded
        restart = RestartAtRequest(server, LIST_EVENTS, restart_at_request, data_dir, down_s)
        server.faults.before(restart)
        env = {"STRIPE_API_BASE": server.url, "STRIPE_API_KEY": api_key}
        first_exit, first_log = _run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env)
        engine.dispose()
        recorded_by_first = SQL.one(engine, "missed_counts", prefix=prefix)["recorded"]
        lock_free = not SQL.scalar(engine, "job_lock_held", job="sweep")
        server.faults.reset()
        second_started = time.monotonic()
        second_exit, second_log = _run_to_end(database_url, "sweep", "--lookback-hours", "2", "--json", env=env)
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
                    "first_run": f"{first_run.get('status')}: {(first_run.get('error') or '')[:120]}",
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
    from local_stripe import LocalStripe, StripeState, checkout_session
    from local_stripe.fault_injection import RETRIEVE_SESSION

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    api_key = "sk_test_faultscenarios000000000000"
    server = LocalStripe(StripeState(), api_keys={api_key}).start()
    ids = [str(uuid.uuid4()) for _ in range(registrations)]
    try:
        created = int(time.time()) - 3600
        with engine.begin() as conn:
            for reg_id in ids:
                session_id = f"cs_test_{uuid.uuid4().hex}"
                server.state.add_checkout_session(checkout_session(id=session_id, created=created,
                                                                   client_reference_id=reg_id))
                SQL.execute(conn, "add_pending_registration_with_session", id=reg_id, session_id=session_id)
        restart = RestartAtRequest(server, RETRIEVE_SESSION, restart_after, data_dir, down_s)
        server.faults.before(restart)
        env = {"STRIPE_API_BASE": server.url, "STRIPE_API_KEY": api_key}
        first_exit, first_log = _run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env)
        engine.dispose()
        fixed_by_first = SQL.one(engine, "reconcile_fix_counts", ids=ids)["completed"]
        lock_free = not SQL.scalar(engine, "job_lock_held", job="reconcile")
        server.faults.reset()
        second_started = time.monotonic()
        second_exit, second_log = _run_to_end(database_url, "reconcile", "--lookback-days", "1", "--json", env=env)
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
                    "first_run": f"{first_run.get('status')}: {(first_run.get('error') or '')[:120]}",
                    "first_reconciliation_run": reconciliation_runs[0]["status"] if reconciliation_runs else None,
                    "fixed_by_first": fixed_by_first, "lock_free_after": lock_free, "second_exit": second_exit,
                    "second_s": round(time.monotonic() - second_started, 1),
                    "log": "" if first_exit == 1 and second_exit == 0 else first_log + " / " + second_log})
    finally:
        server.stop()
        engine.dispose()


# --- Slack and e-mail down during an incident ------------------------------------------------

def _alert_key(text: str) -> str | None:
    """The incident number of an alert message (its event type ``..._incident_N``)."""
    import re

    found = re.search(r"incident_(\d+)", text)
    return found.group(1) if found else None


def channels_down_during_incident(database_url: str, *, alerts: int = 3, watchers: int = 2, down_s: float = 5.0,
                                  deadline_s: float = 60) -> ScenarioResult:
    """An incident (``alerts`` failed checkout event types) while both people-facing channels
    are down: Slack's incoming webhook (a real HTTP server on 127.0.0.1 standing in for it)
    answers 503, and the mail server (aiosmtpd) is stopped, so connections are refused. Then
    both come back (the mail server started again on the same port). Every alert must be
    recorded at once, and each firing and each resolved notification delivered once on each
    channel, with ``watchers`` watch processes running."""
    from email.message import EmailMessage

    from devharness.http_sink import HttpSink
    from devharness.smtp import SmtpServer

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    prefix = f"evt_channels_{uuid.uuid4().hex[:8]}_"
    mail_up = SmtpServer()
    mail_up.__enter__()
    port = mail_up.port
    mail_up.__exit__(None, None, None)  # the mail server stops: connections refused from now on
    mail_back: SmtpServer | None = None
    with HttpSink(status=503) as slack:
        env = {"MONITOR_ALERT_WEBHOOK_URL": None, "MONITOR_ALERT_SLACK_WEBHOOK_URL": slack.url,
               "MONITOR_SMTP_URL": f"smtp://127.0.0.1:{port}", "MONITOR_EMAIL_FROM": "Monitor <monitor@example.org>",
               "MONITOR_ALERT_EMAIL_TO": "ops@example.org", "MONITOR_ALERT_INTERVAL_S": "1"}
        processes = watch_processes(database_url, watchers, extra_env=env)

        def failed_on(channel: str) -> int:
            return sum(r["n"] for r in SQL.all(engine, "alert_channel_states")
                       if r["channel"] == channel and r["status"] == "failed")

        def mail_messages() -> list[EmailMessage]:
            return mail_back.messages if mail_back is not None else []

        other: Counter = Counter()  # messages of other rules (e.g. failure_rate, once 20 events failed)

        def delivered() -> dict[tuple[str, str, str], int]:
            """The incident's messages received, by (channel, alert, firing/resolved)."""
            sent: Counter = Counter()
            other.clear()
            texts = [("slack", r.json().get("text", "")) for r in slack.received]
            texts += [("email", str(m["Subject"])) for m in mail_messages()]
            for channel, text in texts:
                key = _alert_key(text)
                if key is None:
                    other[channel] += 1
                else:
                    sent[(channel, key, "resolved" if text.startswith("[RESOLVED]") else "firing")] += 1
            return sent

        try:
            if not wait_until(lambda: SQL.scalar(engine, "watchers_listening") >= watchers, 30):
                raise RuntimeError("watch processes did not start: " + processes[0].log_tail(600))
            ids = []
            with engine.begin() as conn:
                for i in range(alerts):
                    ids.append(f"{prefix}{i}")
                    SQL.execute(conn, "fail_checkout_event", id=ids[-1], type=f"checkout.session.incident_{i}")
            # Each claim tries a send 3 times with backoff, one notification after another:
            # twenty alerts take a while to have all failed once.
            tried = wait_until(lambda: failed_on("slack") >= alerts and failed_on("email") >= alerts,
                               max(30.0, deadline_s))
            time.sleep(down_s)
            states_down = {f"{r['channel']}/{r['kind']}/{r['status']}": r["n"]
                           for r in SQL.all(engine, "alert_channel_states")}
            slack_attempts_down = slack.attempts
            slack.status = 200  # both back
            mail_back = SmtpServer(port=port)
            mail_back.__enter__()
            back = time.monotonic()

            def firing_everywhere() -> bool:
                keys = {(channel, key) for channel, key, status in delivered() if status == "firing"}
                return len(keys) >= 2 * alerts
            wait_until(firing_everywhere, deadline_s, pause_s=0.1)
            recover_s = time.monotonic() - back
            with engine.begin() as conn:
                SQL.execute(conn, "complete_events", ids=ids)
            wait_until(lambda: sum(delivered().values()) >= 4 * alerts, deadline_s, pause_s=0.1)
            time.sleep(3.0)  # anything sent twice would arrive now
        finally:
            exits = [process.stop() for process in processes]
            for process in processes:
                process.close()
            sent = delivered()
            if mail_back is not None:
                mail_back.__exit__(None, None, None)
    states = {f"{r['channel']}/{r['kind']}/{r['status']}": r["n"] for r in SQL.all(engine, "alert_channel_states")}
    engine.dispose()
    expected = 4 * alerts  # firing + resolved, on two channels
    distinct = len(sent)
    firing = {(channel, key) for channel, key, status in sent if status == "firing"}
    return ScenarioResult(
        f"Slack answering 503 and the mail server stopped for {down_s:g} s during an incident of {alerts} alerts, "
        f"{watchers} watch processes",
        before=expected, after=distinct, lost=expected - distinct, duplicated=sum(n - 1 for n in sent.values()),
        stuck=sum(n for k, n in states.items() if not k.endswith("/sent")),
        recover_s=recover_s if len(firing) == 2 * alerts else None,
        detail={"tried_while_down": tried, "while_down": states_down, "slack_attempts_while_down": slack_attempts_down,
                "slack_delivered": sum(n for (channel, _, _), n in sent.items() if channel == "slack"),
                "email_delivered": sum(n for (channel, _, _), n in sent.items() if channel == "email"),
                "other_alerts_messages": dict(other), "watch_exits": exits})


# --- two retry processes over the same failed events ------------------------------------------

def _json_report(log: str) -> dict[str, Any]:
    """The JSON summary a ``--json`` job printed (the first object in its output)."""
    start = log.find("{")
    return json.JSONDecoder().raw_decode(log, start)[0] if start >= 0 else {}


def two_retries(database_url: str, *, events: int = 300, workers: int = 2, concurrency: int = 4) -> ScenarioResult:
    """Two ``python -m jobs retry`` processes started together (the schedule's and a person's)
    over the same ``events`` failed events due for a retry, through a real receiver: each
    event must be re-delivered once (the two runs' deliveries add up to ``events``) and
    completed by exactly one attempt."""
    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    registrations = [str(uuid.uuid4()) for _ in range(events)]
    batch = [checkout_session_event("checkout.session.completed", registration_id=rid,
                                    event_id=f"evt_tworetry_{uuid.uuid4().hex[:20]}") for rid in registrations]
    ids = [e["id"] for e in batch]
    try:
        with engine.begin() as conn:
            for rid, event in zip(registrations, batch):
                SQL.execute(conn, "add_pending_registration", id=rid, email=f"{rid[:8]}@example.com")
                SQL.execute(conn, "add_failed_event", id=event["id"], type=event["type"], payload=json.dumps(event))
        receiver, url = receiver_process(database_url, workers=workers)
        with receiver:
            env = {"MONITOR_REPLAY_URL": url + WEBHOOK_PATH, "STRIPE_WEBHOOK_SECRET": SECRET}
            processes = [jobs_command(database_url, "retry", "--concurrency", str(concurrency), "--json",
                                      extra_env=env) for _ in range(2)]
            started = time.monotonic()
            for process in processes:  # both started before either is waited for: they overlap
                process.start()
            try:
                exits = [process.wait(300) for process in processes]
                reports = [_json_report(process.log()) for process in processes]
            finally:
                for process in processes:
                    process.close()
            took = time.monotonic() - started
        result = count_outcomes(engine, f"two retry processes at once over {events} failed events", ids, registrations)
        delivered = [int(r.get("delivered") or 0) for r in reports]
        # An event delivered by both runs shows as more deliveries than events (the second
        # would be answered "duplicate" and leave no attempt behind).
        result.duplicated += max(sum(delivered) - events, 0)
        result.recover_s = took if result.ok else None
        result.detail.update(exits=exits, delivered_by_each=delivered,
                             busy=[int(r.get("busy") or 0) for r in reports])
        return result
    finally:
        engine.dispose()


# --- a job killed outright: its job_runs row -------------------------------------------------

def job_killed_mid_run(database_url: str, *, next_job: tuple[str, ...] = ("health-snapshot",)) -> ScenarioResult:
    """Two ``python -m jobs watch`` processes run; one is SIGKILLed (nothing runs its
    shutdown, its job_runs row stays 'running'). The next start of a job (``next_job``) must
    close the killed run's row as failed with the reason "abandoned", and leave the live
    watch's row 'running'; stopped, the live one is recorded completed."""
    from devharness.http_sink import HttpSink

    engine = sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)
    with HttpSink() as sink:
        processes = watch_processes(database_url, 2, extra_env={"MONITOR_ALERT_WEBHOOK_URL": sink.url,
                                                                "MONITOR_ALERT_INTERVAL_S": "5"})
        try:
            if not wait_until(lambda: SQL.scalar(engine, "watchers_listening") >= 2, 30):
                raise RuntimeError("watch processes did not start: " + processes[0].log_tail(600))
            victim, survivor = processes
            victim_pid, survivor_pid = victim.pid, survivor.pid
            victim.popen.kill()  # SIGKILL
            victim.popen.wait(10)
            killed = time.monotonic()
            running_after_kill = SQL.scalar(engine, "running_job_runs")
            next_exit, next_log = _run_to_end(database_url, *next_job, env={})
            recover_s = time.monotonic() - killed
            victim_row = SQL.one(engine, "job_run_by_pid", job="watch", pid=victim_pid)
            survivor_row = SQL.one(engine, "job_run_by_pid", job="watch", pid=survivor_pid)
            survivor_alive = survivor.popen.poll() is None
        finally:
            exits = [process.stop() for process in processes]
            for process in processes:
                process.close()
    survivor_final = SQL.one(engine, "job_run_by_pid", job="watch", pid=survivor_pid)
    engine.dispose()
    closed = victim_row["status"] == "failed" and (victim_row["error"] or "").startswith("abandoned")
    kept = survivor_row["status"] == "running"
    return ScenarioResult(
        f"a watch process SIGKILLed beside a live one; then {' '.join(next_job)} starts",
        before=2, after=int(closed) + int(kept), lost=0 if kept else 1, duplicated=0,
        stuck=0 if closed else 1, recover_s=recover_s if closed else None,
        detail={"running_after_kill": running_after_kill, "next_exit": next_exit,
                "killed_run": f"{victim_row['status']}: {(victim_row['error'] or '')[:140]}",
                "live_run": survivor_row["status"], "live_alive": survivor_alive,
                "live_run_after_stop": survivor_final["status"], "watch_exits": exits,
                "log": "" if closed and kept else next_log})
