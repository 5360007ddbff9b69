"""Re-deliver N failed events with ``python -m jobs retry``'s code while Stripe keeps
delivering new events to the same receiver; print events/s and the receiver's p95.

    python bench/retry_bench.py --quick                 # 500 failed events
    python bench/retry_bench.py                         # the target: 10,000 failed events

Builds a throwaway, migrated database (devharness), fills it with N failed events whose
automatic retry is due (70 % paid checkout sessions of pending registrations, the rest
other event types), starts the reference receiver (``python -m tracking.receiver``) in its
own process, and measures a steady stream of fresh signed deliveries (``--probe-rate`` per
second) first alone (baseline), then while ``jobs.replay.retry.run`` re-delivers every due event at
``--concurrency``. Prints re-delivered events/s and the probe deliveries' p50/p95/p99 before
and during, then checks: every event completed, each registration completed exactly once,
one retry attempt per event. Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa

from devharness import ManagedProcess, ThrowawayDatabase, http_ready, listening_socket, socket_url
from jobs.replay import retry
from jobs.replay.redeliver import Redeliverer
from local_stripe.objects import checkout_session_event
from tracking.signing import stripe_signature

SECRET = "whsec_bench_retry"

FILL_REGISTRATIONS = sa.text("""
    INSERT INTO registrations (id, email, processing_status, amount_total, currency, created_at)
    VALUES (CAST(:id AS uuid), :email, 'pending', 2500, 'eur', now() - interval '1 hour')""")
FILL_EVENTS = sa.text("""
    INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
        created_at, processed_at, processing_started_at, error_message, error_category,
        recovery_action, alert_level, next_retry_at)
    VALUES (:id, :type, 'failed', CAST(:payload AS jsonb), 1, now() - interval '10 minutes',
        now() - interval '9 minutes', now() - interval '9 minutes',
        'ConnectionResetError: [Errno 104] Connection reset by peer', 'network',
        'retry_with_backoff', 'warning', now() - interval '1 minute')""")
CHECK = sa.text("""
    SELECT (SELECT count(*) FROM webhook_events WHERE processing_status = 'completed') AS completed,
           (SELECT count(*) FROM webhook_events WHERE processing_status <> 'completed') AS not_completed,
           (SELECT count(*) FROM registrations WHERE processing_status = 'completed') AS registrations_completed,
           (SELECT count(*) FROM webhook_event_attempts WHERE source = 'retry') AS retry_attempts,
           (SELECT count(*) FROM (SELECT stripe_event_id FROM webhook_event_attempts WHERE source = 'retry'
                                  GROUP BY 1 HAVING count(*) > 1) AS twice) AS retried_twice""")


def fill(engine, n: int) -> int:
    """N failed, due events; returns how many are paid checkout sessions of a registration."""
    registrations, events = [], []
    for i in range(n):
        if i % 10 < 7:
            reg = str(uuid.uuid4())
            registrations.append({"id": reg, "email": f"bench{i}@example.com"})
            event = checkout_session_event("checkout.session.completed", registration_id=reg)
        else:
            event = checkout_session_event(("payment_intent.created", "charge.succeeded", "customer.created")[i % 3])
        events.append({"id": event["id"], "type": event["type"], "payload": json.dumps(event)})
    with engine.begin() as conn:
        if registrations:
            conn.execute(FILL_REGISTRATIONS, registrations)
        conn.execute(FILL_EVENTS, events)
        conn.execute(sa.text("ANALYZE webhook_events"))
    return len(registrations)


class Probe:
    """Fresh signed deliveries at a steady rate, each timed (Stripe's traffic meanwhile)."""

    def __init__(self, host: str, port: int, rate: float):
        self.host, self.port, self.rate = host, port, rate
        self.samples: list[tuple[float, float, int]] = []  # (sent at, seconds, HTTP status)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        interval = 1 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            body = json.dumps(checkout_session_event("payment_intent.created")).encode()
            headers = {"Content-Type": "application/json",
                       "Stripe-Signature": stripe_signature(body, SECRET, timestamp=int(time.time()))}
            started = time.monotonic()
            try:
                conn.request("POST", "/stripe/webhook", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                status = 0
            self.samples.append((started, time.monotonic() - started, status))
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for sent, seconds, _ in self.samples if start <= sent < end]


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms ({len(values)} deliveries)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="500 events")
    parser.add_argument("--concurrency", type=int, default=retry.DEFAULT_CONCURRENCY)
    parser.add_argument("--probe-rate", type=float, default=20.0, help="Stripe deliveries per second meanwhile")
    parser.add_argument("--baseline-s", type=float, default=5.0)
    args = parser.parse_args()
    n = 500 if args.quick else args.events

    with ThrowawayDatabase(prefix="webhook_monitor_retry_bench") as database:
        engine = sa.create_engine(database.url, pool_size=args.concurrency + 2, hide_parameters=True)
        started = time.monotonic()
        paid = fill(engine, n)
        print(f"filled {n:,} failed events ({paid:,} paid checkout sessions) in {time.monotonic() - started:.1f} s")
        sock = listening_socket()
        url = socket_url(sock)
        host, port = sock.getsockname()[:2]
        receiver = ManagedProcess(
            [sys.executable, "-m", "tracking.receiver", "--fd", str(sock.fileno()),
             "--log-level", "warning"],
            name="receiver", pass_sockets=[sock], ready=http_ready(f"{url}/healthz"),
            extra_env={"DATABASE_URL": database.url, "STRIPE_WEBHOOK_SECRET": SECRET})
        with receiver:
            probe = Probe(host, port, args.probe_rate)
            probe.thread.start()
            time.sleep(args.baseline_s)
            retry_started = time.monotonic()
            with Redeliverer(f"{url}/stripe/webhook", SECRET, max_connections=args.concurrency) as client:
                report = retry.run(engine, now=datetime.now(timezone.utc), redeliverer=client,
                                   concurrency=args.concurrency)
            retry_ended = time.monotonic()
            probe.stop.set()
            probe.thread.join(30)
        elapsed = retry_ended - retry_started
        with engine.connect() as conn:
            check = conn.execute(CHECK).mappings().one()
        engine.dispose()

    print(f"re-delivered {report.delivered:,} of {report.planned:,} events in {elapsed:.1f} s: "
          f"{report.delivered / elapsed:,.0f} events/s at concurrency {args.concurrency} "
          f"({report.completed:,} completed, {report.failed_again + report.failed_permanently:,} failed)")
    print(f"receiver, Stripe's deliveries alone:       {percentiles(probe.between(0, retry_started))}")
    print(f"receiver, Stripe's deliveries during retry: {percentiles(probe.between(retry_started, retry_ended))}")
    failed_probes = sum(1 for _, _, status in probe.samples if status != 200)
    problems = []
    if report.delivered != n or report.completed != n:
        problems.append(f"{report.delivered} delivered, {report.completed} completed, expected {n}")
    if check["registrations_completed"] != paid:
        problems.append(f"{check['registrations_completed']} registrations completed, expected {paid}")
    if check["retry_attempts"] != n or check["retried_twice"]:
        problems.append(f"{check['retry_attempts']} retry attempts ({check['retried_twice']} events twice), expected {n}")
    if check["not_completed"]:
        problems.append(f"{check['not_completed']} events not completed")
    if failed_probes:
        problems.append(f"{failed_probes} of Stripe's deliveries were not answered 200")
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    if not problems:
        print("checks passed: every event completed once, every paid registration completed once")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
