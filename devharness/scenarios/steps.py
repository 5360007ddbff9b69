"""The steps the fault scenarios share: the receiver and the jobs as real processes, signed
deliveries and Stripe's redeliveries, the data a scenario starts from (paid checkouts,
failed events, Stripe events the app missed, payments it lost), and the count of what
became of it (:class:`ScenarioResult`).
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.db import normalise_url
from core.sql import load_package
from devharness.ports import listening_socket, socket_url
from devharness.process import ManagedProcess, http_ready
from local_stripe.objects import checkout_session_event
from tracking.signing import stripe_signature

SQL = load_package("devharness.scenarios", "steps.sql")
REPO = Path(__file__).resolve().parent.parent.parent
SECRET = "whsec_fault_scenarios"
WEBHOOK_PATH = "/stripe/webhook"
STRIPE_API_KEY = "sk_test_faultscenarios000000000000"


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


def scratch_engine(database_url: str) -> sa.Engine:
    """An engine without a pool: no connection of it outlives a restart of the server."""
    return sa.create_engine(normalise_url(database_url), poolclass=NullPool, hide_parameters=True)


def wait_until(condition, timeout_s: float, pause_s: float = 0.05) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(pause_s)
    return bool(condition())


def run_line(run: Mapping[str, Any], width: int) -> str:
    """A job_runs row as a table note: its status and the start of its error."""
    return f"{run.get('status')}: {(run.get('error') or '')[:width]}"


# --- the receiver as deployed, and Stripe's deliveries ----------------------------------------

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
            pending = [e for e, status in zip(pending, statuses, strict=True) if not 200 <= status < 300]
            if not pending:
                break
            if time.monotonic() - started > deadline_s:
                return None, sent
            time.sleep(pause_s)
    return time.monotonic() - started, sent


# --- paid checkouts: what the receiver and retry deliver -------------------------------------

def paid_checkouts(events: int, id_prefix: str) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """``events`` new registrations and a paid-checkout event for each, event ids starting
    with ``id_prefix``: (registration ids, events, event ids)."""
    registrations = [str(uuid.uuid4()) for _ in range(events)]
    batch = [checkout_session_event("checkout.session.completed", registration_id=rid,
                                    event_id=f"{id_prefix}{uuid.uuid4().hex[:20]}") for rid in registrations]
    return registrations, batch, [e["id"] for e in batch]


def add_pending_registrations(engine: sa.Engine, registrations: list[str], *,
                              failed_events: list[Mapping[str, Any]] | None = None) -> None:
    """The registrations, pending as the app writes them before Checkout; with
    ``failed_events`` (one per registration), each event recorded failed, its retry due."""
    with engine.begin() as conn:
        for n, rid in enumerate(registrations):
            SQL.execute(conn, "add_pending_registration", id=rid, email=f"{rid[:8]}@example.com")
            if failed_events is not None:
                event = failed_events[n]
                SQL.execute(conn, "add_failed_event", id=event["id"], type=event["type"], payload=json.dumps(event))


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


# --- the jobs as processes ----------------------------------------------------------------

def jobs_command(database_url: str, *args: str, extra_env: Mapping[str, str] | None = None) -> ManagedProcess:
    """``python -m jobs ARGS`` as a managed child process (started by the caller)."""
    env = {"DATABASE_URL": database_url, "DASHBOARD_DATABASE_URL": None, **(extra_env or {})}
    return ManagedProcess([sys.executable, "-m", "jobs", *args], name=f"jobs-{args[0]}", cwd=REPO,
                          extra_env=env, stop_timeout_s=30)


def run_to_end(database_url: str, *args: str, env: Mapping[str, str], timeout_s: float = 300) -> tuple[int, str]:
    """``python -m jobs ARGS`` to its end: (exit code, the end of its output)."""
    process = jobs_command(database_url, *args, extra_env=env)
    process.start()
    try:
        code = process.wait(timeout_s)
        return code, process.log_tail(500)
    finally:
        process.close()


def watch_processes(database_url: str, count: int, *, extra_env: Mapping[str, str]) -> list[ManagedProcess]:
    """``count`` started ``python -m jobs watch`` processes (as on two machines)."""
    processes = []
    for n in range(count):
        process = jobs_command(database_url, "watch", extra_env=extra_env)
        process.name = f"watch-{n}"
        processes.append(process.start())
    return processes


def wait_for_watchers(engine: sa.Engine, processes: list[ManagedProcess]) -> None:
    """Wait until every watch process listens for alert notifications; RuntimeError with the
    first one's output when they do not within 30 s."""
    if not wait_until(lambda: SQL.scalar(engine, "watchers_listening") >= len(processes), 30):
        what = "watch did not start: " if len(processes) == 1 else "watch processes did not start: "
        raise RuntimeError(what + processes[0].log_tail(600))


# --- a local Stripe holding what the sweep and reconcile read --------------------------------

def start_local_stripe():
    """A started local_stripe server accepting :data:`STRIPE_API_KEY` (stopped by the caller)."""
    from local_stripe import LocalStripe, StripeState

    return LocalStripe(StripeState(), api_keys={STRIPE_API_KEY}).start()


def stripe_env(server) -> dict[str, str]:
    """The variables pointing the jobs at ``server``."""
    return {"STRIPE_API_BASE": server.url, "STRIPE_API_KEY": STRIPE_API_KEY}


def add_missed_events(engine: sa.Engine, server, prefix: str, *, events: int, recorded: int) -> int:
    """``events`` paid-checkout events of ten minutes ago at Stripe (ids ``prefix`` and a
    number), not delivered; the app recorded the first ``recorded``. Returns how many it missed."""
    from local_stripe import checkout_session, event

    created = int(time.time()) - 600
    for i in range(events):
        server.state.add_event(event("checkout.session.completed", checkout_session(created=created),
                                     id=f"{prefix}{i:05d}", created=created, pending_webhooks=1,
                                     delivery_success=False))
    with engine.begin() as conn:
        for i in range(recorded):
            SQL.execute(conn, "add_recorded_event", stripe_event_id=f"{prefix}{i:05d}")
    return events - recorded


def add_lost_payments(engine: sa.Engine, server, registrations: int) -> list[str]:
    """``registrations`` still pending an hour after their Checkout Session was paid at
    Stripe (lost webhooks, each an auto-fix for reconcile); their ids."""
    from local_stripe import checkout_session

    ids = [str(uuid.uuid4()) for _ in range(registrations)]
    created = int(time.time()) - 3600
    with engine.begin() as conn:
        for reg_id in ids:
            session_id = f"cs_test_{uuid.uuid4().hex}"
            server.state.add_checkout_session(checkout_session(id=session_id, created=created,
                                                               client_reference_id=reg_id))
            SQL.execute(conn, "add_pending_registration_with_session", id=reg_id, session_id=session_id)
    return ids
