"""One conformance suite for every Stripe webhook receiver the project ships: the delivery
cases that matter, written once as data (``CASES``), and one driver (``run_case``) that plays
a case against a receiver at any URL and reads back what it left in the database.

The reference receiver (tracking/receiver.py under uvicorn) and the Supabase Edge Function
kit (integrations/supabase, under Deno) must both pass every case with the same expected
answers, rows, attempts, categories and registration outcomes
(tests/integrations/test_webhook_conformance.py runs them).

A case is a list of steps; each step signs and POSTs the case's body (one or several copies
at once), optionally after adding the case's registration, and optionally doing something to
the attempt while it waits inside PostgreSQL for the registration's row, which the driver
holds: ``terminate`` its backend (a failover), ``cancel`` its statement (what
statement_timeout does: SQLSTATE 57014), or ``kill`` the receiver (SIGKILL, then restart).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa

from core.sql import load_package
from local_stripe.objects import checkout_session_event
from tracking.receiver import MAX_JSON_DEPTH
from tracking.signing import stripe_signature

SQL = load_package("tests.support", "webhook_conformance.sql")
NEW_SECRET, OLD_SECRET, WRONG_SECRET = "whsec_conformance_new", "whsec_conformance_old", "whsec_not_ours"
SECRETS = {"new": NEW_SECRET, "old": OLD_SECRET, "wrong": WRONG_SECRET}
# What both receivers are started with: the new secret first, the old one still accepted.
WEBHOOK_SECRET = f"{NEW_SECRET},{OLD_SECRET}"
ANY_2XX = frozenset({200})


class Target(Protocol):
    """A receiver under test: where to POST, and how to kill and restart it."""

    url: str

    def kill(self) -> None: ...

    def restart(self) -> None: ...


@dataclass(frozen=True)
class Step:
    """One delivery (or ``copies`` at once) of the case's body and what it must be answered."""

    secret: str = "new"  # new | old | wrong
    age_s: int = 0  # how long before now the signature is dated (negative: in the future)
    source: str | None = None  # the Webhook-Monitor-Source header (retry, sweep)
    copies: int = 1
    before: str | None = None  # "add_registration": the registration exists from this step on
    fault: str | None = None  # terminate | cancel | kill
    answers: frozenset[int] = ANY_2XX  # allowed HTTP statuses (0: no answer, the receiver died)
    status: str | None = None  # the answer's "status"; with copies, exactly one answer has it
    category: str | None = None  # the answer's "error_category"
    retry: bool | None = None  # the answer's "retry"
    settle: bool = False  # repeat while answered 409, as Stripe does (after a kill)


@dataclass(frozen=True)
class Expected:
    """What the case leaves in the database."""

    row: str | None  # webhook_events.processing_status; None: no row at all
    attempts: int | None = None
    category: str | None = None
    outcome: str | None = None
    registration: str | None = None  # the registration's processing_status
    attempt_log: tuple[str, ...] = ()  # "source:outcome" of each attempt, in order
    raw_kept: bool = False
    retry_planned: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    body: str  # paid_checkout | unknown_type | bad_amount | not_json | nul | deep
    steps: tuple[Step, ...]
    expected: Expected
    registration: bool = True  # a pending registration exists before the first step


def _failed(category: str, retry: bool, *, answers: frozenset[int] = ANY_2XX, **kwargs: Any) -> Step:
    return Step(answers=answers, status="failed", category=category, retry=retry, **kwargs)


CASES: tuple[Case, ...] = (
    Case("normal delivery", "paid_checkout", (Step(status="processed"),),
         Expected("completed", 1, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:completed",))),
    Case("30 concurrent copies of one event", "paid_checkout",
         (Step(copies=30, answers=frozenset({200, 409}), status="processed"),),
         Expected("completed", 1, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:completed",))),
    Case("wrong secret", "paid_checkout", (Step(secret="wrong", answers=frozenset({400})),),
         Expected(None, registration="pending")),
    Case("expired signature", "paid_checkout", (Step(age_s=310, answers=frozenset({400})),),
         Expected(None, registration="pending")),
    Case("signature dated in the future", "paid_checkout", (Step(age_s=-310, answers=frozenset({400})),),
         Expected(None, registration="pending")),
    Case("rotated secret: the old one still verifies", "paid_checkout", (Step(secret="old", status="processed"),),
         Expected("completed", 1, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:completed",))),
    Case("non-JSON body", "not_json", (_failed("validation", False),),
         Expected("failed", 1, "validation", raw_kept=True, attempt_log=("delivery:failed",)), registration=False),
    Case("\\u0000 in a string", "nul", (_failed("validation", False),),
         Expected("failed", 1, "validation", raw_kept=True, attempt_log=("delivery:failed",)), registration=False),
    Case(f"nesting over {MAX_JSON_DEPTH}", "deep", (_failed("validation", False),),
         Expected("failed", 1, "validation", raw_kept=True, attempt_log=("delivery:failed",)), registration=False),
    Case("validation error", "bad_amount", (_failed("validation", False),),
         Expected("failed", 1, "validation", registration="pending", attempt_log=("delivery:failed",))),
    Case("database error, then Stripe's retry", "paid_checkout",
         (_failed("database", True, answers=frozenset({500}), fault="terminate"), Step(status="processed")),
         Expected("completed", 2, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:failed", "delivery:completed"))),
    Case("statement timeout, then Stripe's retry", "paid_checkout",
         (_failed("database", True, answers=frozenset({500}), fault="cancel"), Step(status="processed")),
         Expected("completed", 2, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:failed", "delivery:completed"))),
    Case("unknown event type", "unknown_type", (Step(status="ignored"),),
         Expected("completed", 1, outcome="ignored", attempt_log=("delivery:completed",)), registration=False),
    Case("crash mid-handling, then redelivery", "paid_checkout",
         (Step(fault="kill", answers=frozenset({0})), Step(status="processed", settle=True)),
         Expected("completed", 2, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:superseded", "delivery:completed"))),
    Case("replay by the monitor after a fix", "paid_checkout",
         (_failed("validation", False), Step(before="add_registration", source="retry", status="processed")),
         Expected("completed", 2, outcome="registration_completed", registration="completed",
                  attempt_log=("delivery:failed", "retry:completed")), registration=False),
)


# --- the driver -------------------------------------------------------------------------------

@dataclass
class Played:
    """What one case did: every answer (status, JSON) and what the database holds after."""

    answers: list[list[tuple[int, dict]]] = field(default_factory=list)
    event_id: str = ""
    row: dict | None = None
    attempt_log: tuple[str, ...] = ()
    registration: str | None = None


def case_body(kind: str, event_id: str, registration_id: str) -> bytes:
    """The body a case delivers, with a fresh event id."""
    if kind in ("paid_checkout", "bad_amount"):
        event = checkout_session_event("checkout.session.completed", registration_id=registration_id,
                                       event_id=event_id)
        if kind == "bad_amount":
            event["data"]["object"]["amount_total"] = "forty-two"
        return json.dumps(event).encode()
    if kind == "unknown_type":
        return json.dumps(checkout_session_event("payment_intent.created", event_id=event_id)).encode()
    if kind == "not_json":
        return f'not json, but it names {{"id": "{event_id}"}}'.encode()
    if kind == "nul":
        event = checkout_session_event("checkout.session.completed", registration_id=registration_id,
                                       event_id=event_id)
        event["data"]["object"]["metadata"] = {"note": "a\u0000b"}
        return json.dumps(event).encode()  # the escape \u0000, which jsonb refuses
    if kind == "deep":
        nested = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
        return f'{{"id": "{event_id}", "type": "charge.succeeded", "data": {nested}}}'.encode()
    raise ValueError(f"unknown body kind {kind!r}")


def post(url: str, body: bytes, *, secret: str, age_s: int = 0, source: str | None = None,
         timeout_s: float = 30) -> tuple[int, dict]:
    """POST ``body`` signed as Stripe signs it; (status, JSON answer), or (0, {}) without answer."""
    headers = {"Content-Type": "application/json",
               "Stripe-Signature": stripe_signature(body, secret, timestamp=int(time.time()) - age_s)}
    if source:
        headers["Webhook-Monitor-Source"] = source
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        text = response.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"text": text.decode(errors="replace")}
        return response.status, answer
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


def write(engine: sa.Engine, name: str, **params: Any) -> None:
    """Run a statement and commit it."""
    with engine.begin() as conn:
        SQL.execute(conn, name, **params)


def wait_for(condition: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _deliver_step(target: Target, step: Step, body: bytes) -> list[tuple[int, dict]]:
    send = lambda _=None: post(target.url, body, secret=SECRETS[step.secret], age_s=step.age_s,
                               source=step.source)
    if step.copies > 1:
        with ThreadPoolExecutor(step.copies) as pool:
            return list(pool.map(send, range(step.copies)))
    answer = send()
    deadline = time.monotonic() + 20
    while step.settle and answer[0] == 409 and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = send()
    return [answer]


def _deliver_with_fault(engine: sa.Engine, target: Target, step: Step, body: bytes,
                        registration_id: str) -> list[tuple[int, dict]]:
    """Deliver while the registration's row is held; do the fault to the waiting attempt."""
    answers: list[tuple[int, dict]] = []
    with engine.connect() as holder:
        SQL.all(holder, "lock_registration", id=registration_id)
        delivery = threading.Thread(target=lambda: answers.extend(_deliver_step(target, step, body)))
        delivery.start()
        pid = wait_for(lambda: SQL.scalar(engine, "backend_waiting_on_registrations"), what="the attempt to wait")
        if step.fault == "terminate":
            SQL.all(engine, "terminate_backend", pid=pid)
        elif step.fault == "cancel":
            SQL.all(engine, "cancel_backend", pid=pid)
        elif step.fault == "kill":
            target.kill()
        holder.rollback()  # the row is free again; a killed receiver's statement ends
        delivery.join(60)
    if step.fault == "kill":
        target.restart()
    return answers


def run_case(case: Case, target: Target, engine: sa.Engine) -> Played:
    """Play ``case`` against ``target`` on the database ``engine`` reaches (emptied before)."""
    played = Played(event_id=f"evt_conformance_{uuid.uuid4().hex[:16]}")
    registration_id = str(uuid.uuid4())
    body = case_body(case.body, played.event_id, registration_id)
    if case.registration:
        write(engine, "add_pending_registration", id=registration_id)
    for step in case.steps:
        if step.before == "add_registration":
            write(engine, "add_pending_registration", id=registration_id)
        if step.fault:
            played.answers.append(_deliver_with_fault(engine, target, step, body, registration_id))
        else:
            played.answers.append(_deliver_step(target, step, body))
    row = SQL.all(engine, "event_rows", id=played.event_id)
    played.row = dict(row[0]) if row else None
    played.attempt_log = tuple(f"{r['source']}:{r['outcome']}"
                               for r in SQL.all(engine, "event_sources", id=played.event_id))
    played.registration = SQL.scalar(engine, "registration_status", id=registration_id)
    return played


def problems(case: Case, played: Played) -> list[str]:
    """How ``played`` differs from the case's expectations (empty: it conforms)."""
    found: list[str] = []
    for number, (step, answers) in enumerate(zip(case.steps, played.answers, strict=True), start=1):
        statuses = [status for status, _ in answers]
        if any(status not in step.answers for status in statuses):
            found.append(f"step {number}: answered {statuses}, expected one of {sorted(step.answers)}: {answers[:3]}")
        if step.status:
            with_status = [answer for _, answer in answers if answer.get("status") == step.status]
            if len(with_status) != 1:
                found.append(f"step {number}: {len(with_status)} answers say {step.status!r}: {answers[:3]}")
            else:
                answer = with_status[0]
                if step.category is not None and answer.get("error_category") != step.category:
                    found.append(f"step {number}: category {answer.get('error_category')!r}, expected {step.category!r}")
                if step.retry is not None and answer.get("retry") is not step.retry:
                    found.append(f"step {number}: retry {answer.get('retry')!r}, expected {step.retry!r}")
    expected = case.expected
    row = played.row
    if expected.row is None:
        if row is not None:
            found.append(f"a row was written: {row}")
    elif row is None:
        found.append("no row was written")
    else:
        seen = {"row": row["processing_status"], "attempts": row["attempts"], "category": row["error_category"],
                "outcome": row["outcome"], "raw_kept": row["raw_kept"], "retry_planned": row["retry_planned"]}
        wanted = {"row": expected.row, "attempts": expected.attempts, "category": expected.category,
                  "outcome": expected.outcome, "raw_kept": expected.raw_kept,
                  "retry_planned": expected.retry_planned}
        for key, value in wanted.items():
            if seen[key] != value:
                found.append(f"{key}: {seen[key]!r}, expected {value!r}")
        if played.attempt_log != expected.attempt_log:
            found.append(f"attempts: {played.attempt_log}, expected {expected.attempt_log}")
    if expected.registration is not None and played.registration != expected.registration:
        found.append(f"registration: {played.registration!r}, expected {expected.registration!r}")
    return found
