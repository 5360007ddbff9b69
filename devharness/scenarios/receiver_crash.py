"""The receiver crashing: SIGKILLed, supervisor and workers, in the middle of a burst of
deliveries, then restarted while Stripe repeats what was not answered."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Mapping

from core.sql import load_package
from devharness.process import ManagedProcess
from devharness.scenarios.steps import (
    ScenarioResult,
    add_pending_registrations,
    count_outcomes,
    deliver,
    paid_checkouts,
    receiver_process,
    redeliver_until_done,
    scratch_engine,
    wait_until,
)

SQL = load_package("devharness.scenarios", "steps.sql", "receiver_crash.sql")

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
    engine = scratch_engine(database_url)
    registrations, batch, ids = paid_checkouts(events, "evt_fault_")
    try:
        add_pending_registrations(engine, registrations)
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
