"""Load the reference receiver with signed deliveries, then check the database lost nothing.

    python bench/receiver_load.py --quick                 # 200 deliveries at concurrency 8
    python bench/receiver_load.py --events 5000 --concurrency 32

Starts ``uvicorn tracking.receiver:app`` in a subprocess, handed a listening loopback socket,
against a throwaway migrated database (``devharness.ThrowawayDatabase``: an embedded PostgreSQL
in a temporary folder, or a scratch database created on DATABASE_URL's server and dropped
afterwards). Sends N distinct events plus 10% duplicate
deliveries at concurrency C, in shuffled order, signed as Stripe signs them. Some events fail
for real: checkout sessions without payment_status, and paid sessions whose registration
does not exist. A 409 answer (another delivery of the event in progress) is delivered again,
as Stripe would. Prints throughput and latency, then verifies: exactly one row per distinct
event, nothing left processing, no registration completed twice, every registration in the
state its events call for, and every failure recorded with its error. Exit code 1 when a
check fails.

``--compare-rollups`` delivers the same workload four times in the same database, with the
rollup triggers of ``migrations/functions/event_rollups.sql`` off, on, on, off, and prints the
throughput of each and their ratio.

``--overhead`` measures what the monitor adds to a handler: the same deliveries go to the
reference receiver with a handler that does no work of its own, untracked (signature check
and JSON parse, then 200) and tracked (the same, inside ``begin``/``attempt``/``complete``),
in the order untracked, tracked, tracked, untracked (``--rounds`` pairs), each round on a
fresh receiver and empty tables. Prints each mode's latency and throughput, the latency
tracking adds per delivery (p50, p95 of all rounds) and the throughput ratio.

``--round-trips`` profiles the delivery path in this process, without HTTP: for each kind of
delivery (new event, paid checkout, duplicate, failing event) the round trips to the
server, how many are BEGIN, COMMIT or ROLLBACK, and how many transactions commit (COMMIT, or
a statement run outside a transaction), counted on the wire through psycopg's Python libpq
wrapper; then the time PostgreSQL spent in each tracking and trigger function
(``track_functions``) and ``EXPLAIN ANALYZE`` of the statements ``webhook_event_begin`` and
``webhook_event_complete`` run, with the time of each trigger they fire.

``--code DIR`` runs the receiver from another checkout of the project (its tracking code
and, with ``PYTHONPATH=DIR``, its migrations), so an older version is measured by this bench.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
import stripe

from devharness import ManagedProcess, ProcessFailed, ThrowawayDatabase, http_ready, listening_socket, socket_url
from local_stripe.objects import checkout_session_event

REPO = Path(__file__).resolve().parent.parent

SECRET = "whsec_bench_receiver_load"
# Share of distinct events per kind; what is left after failures is split by these weights.
KIND_WEIGHTS = {"paid": 70, "expired": 10, "async_failed": 5, "unknown": 15}


# --- workload ---------------------------------------------------------------------------

def build_workload(n_events: int, duplicates: float, failures: float, rng: random.Random):
    """(registrations to insert, events by id with their expected result, delivery order)."""
    n_fail = round(n_events * failures)
    rest = n_events - n_fail
    weights = list(KIND_WEIGHTS.values())
    kinds = (["fail_missing_field"] * (n_fail - n_fail // 2) + ["fail_no_registration"] * (n_fail // 2)
             + rng.choices(list(KIND_WEIGHTS), weights=weights, k=rest))
    rng.shuffle(kinds)
    created = int(time.time())
    registrations, events = [], {}
    for kind in kinds:
        reg_id = str(uuid.uuid4())
        if kind in ("paid", "expired", "async_failed", "fail_missing_field"):
            registrations.append({"id": reg_id, "email": f"{reg_id[:8]}@example.com", "created": datetime.now(timezone.utc)})
        if kind == "unknown":
            event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": "payment_intent.created",
                     "created": created, "livemode": False,
                     "data": {"object": {"id": f"pi_{uuid.uuid4().hex[:24]}", "object": "payment_intent"}}}
        elif kind == "expired":
            event = checkout_session_event("checkout.session.expired", registration_id=reg_id,
                                           payment_status="unpaid", created=created)
        elif kind == "async_failed":
            event = checkout_session_event("checkout.session.async_payment_failed", registration_id=reg_id,
                                           payment_status="unpaid", created=created)
        else:  # paid, and both kinds of failure (a paid session with a problem)
            event = checkout_session_event("checkout.session.completed", registration_id=reg_id,
                                           amount_total=rng.choice([1500, 2500, 4900]), created=created)
            if kind == "fail_missing_field":
                del event["data"]["object"]["payment_status"]
        events[event["id"]] = {"kind": kind, "registration_id": reg_id,
                               "body": json.dumps(event, separators=(",", ":"))}
    order = list(events) + rng.choices(list(events), k=round(n_events * duplicates))
    rng.shuffle(order)
    return registrations, events, order


def insert_registrations(engine, registrations) -> None:
    if not registrations:
        return
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO registrations (id, email, created_at) "
                             "VALUES (CAST(:id AS uuid), :email, :created)"), registrations)


# --- receiver ---------------------------------------------------------------------------

def receiver_process(url: str, workers: int, log_path: str, *, code: Path = REPO,
                     tracking: bool | None = None) -> tuple[ManagedProcess, int]:
    """``uvicorn tracking.receiver:app`` run from the checkout ``code``, handed a listening
    loopback socket (ready once /healthz answers 200), and that socket's port. ``tracking``
    not None: the receiver of ``--overhead`` instead (``overhead_app``), tracked or not."""
    sock = listening_socket()
    # Linux gives the connections a listening socket accepts its TCP_NODELAY; uvicorn sets none
    # on a socket handed over with --fd (it takes it for a Unix socket), and without it each
    # answer waits for the client's delayed ACK (40 ms and more at low concurrency).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    env = {"DATABASE_URL": url, "STRIPE_WEBHOOK_SECRET": SECRET}
    app = ["tracking.receiver:app"]
    if tracking is not None:
        # This file, imported by path: the checkout under test need not have it.
        app = ["receiver_load:overhead_app", "--factory", "--app-dir", str(Path(__file__).resolve().parent)]
        env["RECEIVER_LOAD_TRACKING"] = "on" if tracking else "off"
        env["PYTHONPATH"] = str(code)
    return ManagedProcess(
        [sys.executable, "-m", "uvicorn", *app, "--fd", str(sock.fileno()),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        name="receiver", cwd=code, extra_env=env,
        pass_sockets=[sock], ready=http_ready(socket_url(sock) + "/healthz"), log_path=log_path), port


def overhead_app():
    """The ASGI app of ``--overhead`` (``uvicorn --factory``): the reference receiver with a
    handler that does no work of its own. RECEIVER_LOAD_TRACKING=on: every delivery goes
    through the tracker as in production (claim, attempt, complete); off: the signature is
    checked and the JSON parsed, then the answer is 200 with nothing written."""
    from tracking import receiver as module
    from tracking.registrations import Outcome

    tracked = os.environ.get("RECEIVER_LOAD_TRACKING", "on") == "on"

    def no_work(conn, event):
        return Outcome("ignored")

    class NoWorkReceiver(module.Receiver):
        def deliver(self, body, signature, source="delivery"):
            if tracked:
                return super().deliver(body, signature, source)
            problem = self.signature_problem(body, signature)
            if problem:
                return 400, {"status": "rejected", "reason": "bad_signature", "detail": problem}
            event = json.loads(body)
            module.event_fields(event)
            outcome = no_work(None, event)
            return 200, {"status": outcome.label, "event_id": event["id"]}

    module.apply_event = no_work  # the receiver's handler, looked up on each delivery
    return NoWorkReceiver()


class Sender:
    """Delivers signed events over one keep-alive connection per thread."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        if getattr(self.local, "conn", None) is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            conn.connect()
            # The request goes out at once, not after the ACK of the one before; the receiver's
            # side is set on its listening socket (receiver_process).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.local.conn = conn
        return self.local.conn

    def post(self, body: str) -> tuple[int, str, float]:
        """(HTTP status, answer status, seconds)."""
        data = body.encode()
        headers = {"Content-Type": "application/json",
                   "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body, SECRET)}
        for retry in (False, True):
            started = time.perf_counter()
            try:
                conn = self._conn()
                conn.request("POST", "/stripe/webhook", body=data, headers=headers)
                response = conn.getresponse()
                answer = json.loads(response.read() or b"{}")
                return response.status, answer.get("status", "?"), time.perf_counter() - started
            except (http.client.HTTPException, ConnectionError):
                self.local.conn = None  # server closed the keep-alive connection: reconnect once
                if retry:
                    raise
        raise AssertionError("unreachable")

    def deliver(self, body: str) -> list[tuple[int, str, float]]:
        """One delivery, plus Stripe-style redeliveries while the event is in progress elsewhere."""
        results = [self.post(body)]
        while results[-1][0] == 409 and len(results) < 50:
            time.sleep(0.05)
            results.append(self.post(body))
        return results


# --- verification -----------------------------------------------------------------------

def verify(engine, events: dict, answers: Counter) -> list[str]:
    """Every check that fails, as a sentence; empty when the database is right."""
    problems = []
    with engine.connect() as conn:
        rows = {r.stripe_event_id: r for r in conn.execute(sa.text(
            "SELECT stripe_event_id, processing_status, attempts, outcome, error_message, error_category, "
            "error_details, registration_id FROM webhook_events"))}
        total = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar()
        completed_twice = conn.execute(sa.text("""
            SELECT count(*) FROM (SELECT registration_id FROM webhook_events
                                  WHERE outcome = 'registration_completed'
                                  GROUP BY registration_id HAVING count(*) > 1) AS twice""")).scalar()
        registrations = dict(conn.execute(sa.text("SELECT id::text, processing_status FROM registrations")).all())

    if total != len(events) or set(rows) != set(events):
        problems.append(f"{total} event rows for {len(events)} distinct events "
                        f"({len(set(events) - set(rows))} missing, {len(set(rows) - set(events))} unexpected)")
    if completed_twice:
        problems.append(f"{completed_twice} registrations were completed by more than one event")
    expected_registration = {"paid": "completed", "expired": "expired", "async_failed": "failed",
                             "fail_missing_field": "pending"}
    for event_id, spec in events.items():
        row = rows.get(event_id)
        if row is None:
            continue
        failing = spec["kind"].startswith("fail_")
        if failing:
            if row.processing_status != "failed" or not row.error_message or not row.error_category \
                    or not (row.error_details or {}).get("exception_type"):
                problems.append(f"{event_id} ({spec['kind']}) is {row.processing_status} without its full error record")
        elif row.processing_status != "completed":
            problems.append(f"{event_id} ({spec['kind']}) is {row.processing_status}, expected completed")
        want = expected_registration.get(spec["kind"])
        if want and registrations.get(spec["registration_id"]) != want:
            problems.append(f"registration {spec['registration_id']} is {registrations.get(spec['registration_id'])}, "
                            f"expected {want} after {spec['kind']}")
    successes = sum(not s["kind"].startswith("fail_") for s in events.values())
    first_answers = answers["processed"] + answers["ignored"]
    if first_answers != successes:
        problems.append(f"{first_answers} deliveries were processed for {successes} distinct successful events")
    return problems


# --- main -------------------------------------------------------------------------------

def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="distinct events (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="deliveries in flight (default 16)")
    parser.add_argument("--duplicates", type=float, default=0.10, help="extra duplicate deliveries, share of events")
    parser.add_argument("--failures", type=float, default=0.05, help="events that fail on purpose, share of events")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="200 events at concurrency 8, to check it runs")
    parser.add_argument("--compare-rollups", action="store_true",
                        help="run the workload four times, rollup triggers off, on, on, off, and compare throughput")
    parser.add_argument("--overhead", action="store_true",
                        help="a handler that does no work, untracked and tracked in turn: what tracking adds")
    parser.add_argument("--rounds", type=int, default=2,
                        help="--overhead: pairs of rounds (untracked, tracked, tracked, untracked, ...; default 2)")
    parser.add_argument("--round-trips", action="store_true",
                        help="count round trips and commits per delivery, time the SQL functions, EXPLAIN ANALYZE")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="the checkout whose receiver to run (default this one)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.concurrency = 200, 8
    args.code = args.code.resolve()
    if args.round_trips:
        import receiver_profile  # this folder's; psycopg must not be loaded before it is

        return receiver_profile.main(args)
    rng = random.Random(args.seed)

    with ThrowawayDatabase() as database, tempfile.NamedTemporaryFile("w+", prefix="receiver-", suffix=".log") as log_file:
        url = database.url
        engine = sa.create_engine(url, hide_parameters=True)
        registrations, events, order = build_workload(args.events, args.duplicates, args.failures, rng)
        if args.overhead:
            ok = overhead(args, url, engine, events, order, log_file)
            engine.dispose()
            return 0 if ok else 1
        # --compare-rollups: the same workload with the rollup triggers off and on, in the
        # order off, on, on, off so a machine getting slower or faster mid-run favours neither.
        modes = ["off", "on", "on", "off"] if args.compare_rollups else [None]
        throughput: dict[str, list[float]] = {"on": [], "off": []}
        failed = False
        for round_number, mode in enumerate(modes):
            if round_number:
                reset_tables(engine)
            if mode is not None:
                set_rollup_triggers(engine, enabled=mode == "on")
                print(f"--- round {round_number + 1}: rollup triggers {mode}")
            insert_registrations(engine, registrations)
            rate, ok = one_round(args, url, engine, events, order, log_file)
            failed = failed or not ok
            if mode is not None:
                throughput[mode].append(rate)
        if args.compare_rollups:
            set_rollup_triggers(engine, enabled=True)
            on, off = statistics.mean(throughput["on"]), statistics.mean(throughput["off"])
            print(f"rollup triggers on: {on:.1f} requests/s, off: {off:.1f} requests/s "
                  f"(mean of {len(throughput['on'])} rounds each): on/off = {on / off:.1%}")
        engine.dispose()
        return 1 if failed else 0


ROLLUP_TRIGGERS = ("webhook_events_rollup", "webhook_events_rollup_fold")


def set_rollup_triggers(engine, *, enabled: bool) -> None:
    """Turn the rollup maintenance triggers (migrations/functions/event_rollups.sql) on or off."""
    with engine.begin() as conn:
        for trigger in ROLLUP_TRIGGERS:
            conn.execute(sa.text(f"ALTER TABLE webhook_events {'ENABLE' if enabled else 'DISABLE'} TRIGGER {trigger}"))


def reset_tables(engine) -> None:
    """Empty what a round writes, so the next round delivers the same events as new."""
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE webhook_events, webhook_event_attempts, registrations, "
                             "webhook_event_rollup, webhook_event_duration_rollup, webhook_event_rollup_delta"))


def deliver_all(args, url: str, events: dict, order: list, log_file, *,
                tracking: bool | None = None) -> tuple[list[tuple[int, str, float]], float]:
    """Deliver the workload once through a fresh receiver: (every answer, seconds)."""
    receiver, port = receiver_process(url, args.workers, log_file.name, code=args.code, tracking=tracking)
    try:
        receiver.start()
    except ProcessFailed as exc:
        raise SystemExit(str(exc)) from None
    with receiver:
        sender = Sender(port)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = [r for batch in pool.map(sender.deliver, (events[e]["body"] for e in order)) for r in batch]
        return results, time.perf_counter() - started


def one_round(args, url: str, engine, events: dict, order: list, log_file) -> tuple[float, bool]:
    """Deliver the workload once through a fresh receiver; print figures and checks.
    Returns (requests per second, every check passed)."""
    results, elapsed = deliver_all(args, url, events, order, log_file)

    latencies = [seconds * 1000 for _, _, seconds in results]
    answers = Counter(status for _, status, _ in results)
    codes = Counter(code for code, _, _ in results)
    kinds = Counter(spec["kind"] for spec in events.values())
    print(f"receiver load: {len(events)} distinct events, {len(order)} deliveries "
          f"({len(order) - len(events)} duplicates), {len(results) - len(order)} redeliveries after 409, "
          f"concurrency {args.concurrency}, {args.workers} worker(s)")
    print("  events by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"  throughput     {len(results) / elapsed:8.1f} requests/s  ({elapsed:.2f} s)")
    print(f"  latency p50    {statistics.median(latencies):8.1f} ms")
    print(f"  latency p95    {percentile(latencies, 95):8.1f} ms")
    print(f"  latency p99    {percentile(latencies, 99):8.1f} ms")
    print("  answers: " + ", ".join(f"{code} {answer} x{n}" for (code, answer), n in
                                    sorted(Counter((c, a) for c, a, _ in results).items())))

    problems = verify(engine, events, answers)
    if codes.keys() - {200, 409, 500}:
        problems.append(f"unexpected HTTP answers: {dict(codes)}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for problem in problems[:20]:
            print(f"  - {problem}")
        log_file.seek(0)
        tail = log_file.read()[-2000:]
        if tail.strip():
            print("receiver log (end):\n" + tail)
        return len(results) / elapsed, False
    print("verified: one row per distinct event, none left processing, no registration completed twice, "
          "registrations in their expected states, every failure recorded with its error")
    return len(results) / elapsed, True


def overhead(args, url: str, engine, events: dict, order: list, log_file) -> bool:
    """``--overhead``: the no-work handler untracked and tracked, in ABBA order; print what
    tracking adds. False when a tracked round left the database wrong."""
    modes = [False, True, True, False] * max(1, args.rounds // 2) + ([False, True] if args.rounds % 2 else [])
    latencies: dict[bool, list[float]] = {False: [], True: []}
    rates: dict[bool, list[float]] = {False: [], True: []}
    p50s: dict[bool, list[float]] = {False: [], True: []}
    ok = True
    print(f"overhead: {len(events)} distinct events, {len(order)} deliveries, concurrency {args.concurrency}, "
          f"{args.workers} worker(s), receiver from {args.code}")
    for number, tracked in enumerate(modes, 1):
        reset_tables(engine)
        results, elapsed = deliver_all(args, url, events, order, log_file, tracking=tracked)
        ms = [seconds * 1000 for _, _, seconds in results]
        latencies[tracked] += ms
        rates[tracked].append(len(results) / elapsed)
        p50s[tracked].append(statistics.median(ms))
        answers = Counter((code, status) for code, status, _ in results)
        print(f"  round {number}: {'tracked  ' if tracked else 'untracked'} {len(results) / elapsed:7.1f} requests/s, "
              f"p50 {statistics.median(ms):6.1f} ms, p95 {percentile(ms, 95):6.1f} ms  "
              + ", ".join(f"{c} {a} x{n}" for (c, a), n in sorted(answers.items())))
        if tracked:
            problems = verify_overhead(engine, events, answers)
            for problem in problems:
                print(f"  FAILED: {problem}")
            ok = ok and not problems
    for tracked in (False, True):
        ms = latencies[tracked]
        print(f"  {'tracked  ' if tracked else 'untracked'}  p50 {statistics.median(ms):6.1f} ms  "
              f"p95 {percentile(ms, 95):6.1f} ms  {statistics.median(rates[tracked]):7.1f} requests/s "
              f"(median of {len(rates[tracked])} rounds)")
    added_p50 = statistics.median(latencies[True]) - statistics.median(latencies[False])
    added_p95 = percentile(latencies[True], 95) - percentile(latencies[False], 95)
    ratio = statistics.median(rates[True]) / statistics.median(rates[False])
    print(f"tracking adds per delivery: p50 {added_p50:+.1f} ms, p95 {added_p95:+.1f} ms; "
          f"throughput tracked/untracked {ratio:.2f}")
    return ok


def verify_overhead(engine, events: dict, answers: Counter) -> list[str]:
    """A tracked no-work round: one completed row and one completed attempt per distinct event,
    each event answered 'ignored' once and 'duplicate' on every later delivery."""
    problems = []
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text(
            "SELECT processing_status, count(*) FROM webhook_events GROUP BY 1")).all())
        attempts = dict(conn.execute(sa.text(
            "SELECT outcome, count(*) FROM webhook_event_attempts GROUP BY 1")).all())
    if rows != {"completed": len(events)}:
        problems.append(f"event rows by status {rows}, expected {len(events)} completed")
    if attempts.get("completed") != len(events) or set(attempts) - {"completed", "superseded"}:
        problems.append(f"attempt rows by outcome {attempts}, expected {len(events)} completed")
    if answers[(200, "ignored")] != len(events):
        problems.append(f"{answers[(200, 'ignored')]} deliveries processed for {len(events)} distinct events")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
