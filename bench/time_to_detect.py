"""Time to detect: from a failed payment event's commit to the alert arriving at a webhook.

    python bench/time_to_detect.py --quick           # 20 incidents, small receiver load
    python bench/time_to_detect.py                   # 40 incidents, 2 watchers, 200k events of history

On a throwaway database (devharness.ThrowawayDatabase), with a history of completed
events so the rules' queries have rows to read:

1. Time to detect. Starts ``python -m jobs watch`` (``--watchers`` processes, the default
   MONITOR_ALERT_INTERVAL_S of 10 s) sending to an HTTP sink on 127.0.0.1, then injects
   incidents one after another: a checkout.session.completed delivery recorded and failed
   through the tracking functions, as a handler does. The clock starts just before the
   failure's COMMIT and stops when the sink has read the firing notification; then the
   event is completed (Stripe's retry succeeding) and the resolved message awaited. Prints
   p50 / p95 / max of both, and checks each message arrived exactly once.
2. The triggers' time as PostgreSQL itself accounts it (EXPLAIN ANALYZE lists each
   trigger's time and calls) for one UPDATE of many events to completed and to failed.
   Then their cost per recorded event: the tracking functions' begin + complete and
   begin + fail, each committed as a handler does, with the triggers off and on in
   alternating batches (medians: on a shared machine this is far steadier than HTTP load).
3. The triggers' cost on the receiver: the receiver load of receiver_load.py (5 % failing
   events, so the failure triggers do fire) with the alert triggers disabled and enabled,
   alternating, in the same run, after a warm-up round. Prints requests/s of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

# The benchmark beside this one: Python puts a script's own folder first on sys.path.
from receiver_load import Sender, build_workload, insert_registrations, percentile, receiver_process

from devharness import ManagedProcess, ThrowawayDatabase, line_ready, running_together
from devharness.http_sink import HttpSink

REPO = Path(__file__).resolve().parent.parent

ALERT_TRIGGERS = ("webhook_events_alert_failed_insert", "webhook_events_alert_failed_update")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load_history(engine, events: int) -> None:
    """Completed events over the last 30 days (a steady endpoint), so rules read real ranges."""
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                        created_at, processed_at, processing_duration_ms, updated_at)
            SELECT 'evt_hist_' || g, 'checkout.session.completed', 'completed', '{}'::jsonb, 1,
                   now() - (g * interval '30 days' / :n), now() - (g * interval '30 days' / :n), 40, now()
            FROM generate_series(1, :n) AS g"""), {"n": events})
        conn.execute(sa.text("ANALYZE webhook_events"))


def watch_processes(url: str, sink_url: str, count: int, log_dir: Path) -> list[ManagedProcess]:
    """``python -m jobs watch`` processes on the default interval (10 s: detection must not
    depend on it), each ready once it says it has evaluated once and listens for notifications."""
    return [ManagedProcess([sys.executable, "-m", "jobs", "watch"], name=f"watch-{n}", cwd=REPO,
                           extra_env={"DATABASE_URL": url, "MONITOR_ALERT_WEBHOOK_URL": sink_url,
                                      "MONITOR_ALERT_INTERVAL_S": None},
                           ready=line_ready("listening for database notifications"),
                           log_path=log_dir / f"watch-{n}.log", stop_timeout_s=30)
            for n in range(count)]


def inject_incidents(engine, sink: HttpSink, incidents: int, rng: random.Random) -> tuple[list[float], list[float]]:
    detect, resolve = [], []
    for n in range(incidents):
        event_id = f"evt_bench_{uuid.uuid4().hex[:20]}"
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT * FROM webhook_event_begin(:id, 'checkout.session.completed', "
                                 "CAST('{}' AS jsonb))"), {"id": event_id})
        expected = len(sink.received) + 1
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT webhook_event_fail(:id, 'registration not found', NULL, 'validation')"),
                         {"id": event_id})
            started = time.time()
            conn.commit()
        received = sink.wait_for(expected, timeout=30)
        if len(received) < expected:
            raise SystemExit(f"incident {n + 1}: no notification within 30 s")
        detect.append(received[expected - 1].at - started)
        time.sleep(rng.uniform(0.05, 0.3))
        with engine.connect() as conn:
            conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed', updated_at = now() "
                                 "WHERE stripe_event_id = :id"), {"id": event_id})
            started = time.time()
            conn.commit()
        received = sink.wait_for(expected + 1, timeout=30)
        if len(received) < expected + 1:
            raise SystemExit(f"incident {n + 1}: no resolved message within 30 s")
        resolve.append(received[expected].at - started)
        time.sleep(rng.uniform(0.2, 1.0))
    return detect, resolve


def receiver_throughput(engine, url: str, events: int, concurrency: int, rng: random.Random, log_file) -> float:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE webhook_events, registrations CASCADE"))
    registrations, workload, order = build_workload(events, 0.10, 0.05, rng)
    insert_registrations(engine, registrations)
    receiver, port = receiver_process(url, 1, log_file.name)
    with receiver:
        sender = Sender(port)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = [r for batch in pool.map(sender.deliver, (workload[e]["body"] for e in order)) for r in batch]
        elapsed = time.perf_counter() - started
    return len(results) / elapsed


def statement_cost(engine, url: str, batches: int, per_batch: int) -> dict[tuple[str, bool], float]:
    """Median microseconds per recorded event (begin + complete, or begin + fail, each its own
    commit, as a handler does) with the alert triggers off and on, in alternating batches, while
    a session listens (as watch does) and drains the notifications."""
    import psycopg

    listener = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    listener.execute("LISTEN monitor_alerts")
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            for _ in listener.notifies(timeout=0.2):
                pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    samples: dict[tuple[str, bool], list[float]] = {}
    try:
        with engine.connect() as conn:
            for batch in range(batches):
                for enabled in ((False, True) if batch % 2 == 0 else (True, False)):
                    set_triggers(engine, enabled)
                    for outcome in ("complete", "fail"):
                        started = time.perf_counter()
                        for _ in range(per_batch):
                            event_id = f"evt_cost_{uuid.uuid4().hex[:20]}"
                            conn.execute(sa.text("SELECT * FROM webhook_event_begin(:id, 'checkout.session.completed', "
                                                 "CAST('{}' AS jsonb))"), {"id": event_id})
                            conn.commit()
                            if outcome == "complete":
                                conn.execute(sa.text("SELECT webhook_event_complete(:id)"), {"id": event_id})
                            else:
                                conn.execute(sa.text("SELECT webhook_event_fail(:id, 'bench failure')"), {"id": event_id})
                            conn.commit()
                        samples.setdefault((outcome, enabled), []).append(
                            (time.perf_counter() - started) / per_batch * 1e6)
    finally:
        stop.set()
        thread.join()
        listener.close()
        set_triggers(engine, True)
    return {key: statistics.median(values) for key, values in samples.items()}


def trigger_time_in_plan(engine, rows: int) -> dict[str, tuple[float, int, float]]:
    """PostgreSQL's own account of the triggers (EXPLAIN ANALYZE): for ``rows`` events going
    processing -> completed and processing -> failed in one statement, each alert trigger's
    total time (ms) and calls, and the statement's total time; rolled back afterwards."""
    import re

    found: dict[str, tuple[float, int, float]] = {}
    with engine.connect() as conn:
        for outcome in ("completed", "failed"):
            conn.execute(sa.text("""
                INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                            processing_started_at)
                SELECT 'evt_plan_' || g, 'checkout.session.completed', 'processing', '{}'::jsonb, 1, now()
                FROM generate_series(1, :n) AS g"""), {"n": rows})
            plan = "\n".join(conn.execute(sa.text(
                "EXPLAIN (ANALYZE, FORMAT TEXT) UPDATE webhook_events SET processing_status = :status "
                "WHERE stripe_event_id LIKE 'evt_plan_%'"), {"status": outcome}).scalars())
            conn.rollback()
            total = float(re.search(r"Execution Time: ([\d.]+) ms", plan).group(1))
            trigger = re.search(r"Trigger webhook_events_alert_failed_update: time=([\d.]+) calls=(\d+)", plan)
            found[outcome] = (float(trigger.group(1)) if trigger else 0.0, int(trigger.group(2)) if trigger else 0,
                              total)
    return found


def set_triggers(engine, enabled: bool) -> None:
    with engine.begin() as conn:
        for name in ALERT_TRIGGERS:
            conn.execute(sa.text(f"ALTER TABLE webhook_events {'ENABLE' if enabled else 'DISABLE'} TRIGGER {name}"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=40, help="failures to detect (default 40)")
    parser.add_argument("--watchers", type=int, default=2, help="watch processes (default 2)")
    parser.add_argument("--history", type=int, default=200_000, help="completed events of history (default 200,000)")
    parser.add_argument("--load-events", type=int, default=2000, help="receiver load per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=4, help="receiver rounds with triggers off and on (default 4)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--plan-rows", type=int, default=20_000, help="events in the EXPLAIN ANALYZE update")
    parser.add_argument("--cost-batches", type=int, default=20, help="alternating batches for the statement cost")
    parser.add_argument("--cost-events", type=int, default=200, help="events per batch for the statement cost")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="20 incidents, 1 watcher, small history and load")
    args = parser.parse_args(argv)
    if args.quick:
        args.incidents, args.watchers, args.history, args.load_events, args.rounds = 20, 1, 20_000, 300, 1
        args.cost_batches, args.cost_events, args.plan_rows = 4, 50, 2000
    rng = random.Random(args.seed)
    print(f"machine: {machine()}")

    with ThrowawayDatabase() as database, tempfile.TemporaryDirectory(prefix="ttd-bench-") as folder:
        url = database.url
        engine = sa.create_engine(url, hide_parameters=True)
        load_history(engine, args.history)

        with HttpSink() as sink, running_together(watch_processes(url, sink.url, args.watchers, Path(folder))):
            time.sleep(1.0)
            detect, resolve = inject_incidents(engine, sink, args.incidents, rng)
            time.sleep(2.0)  # a duplicate would arrive now
        kinds = Counter((r.json()["alert_id"], r.json()["status"]) for r in sink.received)
        duplicates = sum(n - 1 for n in kinds.values())
        print(f"time to detect: {args.incidents} incidents (failed checkout.session.completed committed -> "
              f"firing notification read by the webhook sink), {args.watchers} watch process(es), "
              f"{args.history:,} events of history")
        for label, values in (("detect", detect), ("resolve", resolve)):
            ms = [v * 1000 for v in values]
            print(f"  {label:<8} p50 {statistics.median(ms):7.0f} ms   p95 {percentile(ms, 95):7.0f} ms   "
                  f"max {max(ms):7.0f} ms")
        print(f"  messages {len(sink.received)} for {args.incidents} incidents (firing + resolved each), "
              f"sent twice: {duplicates}")

        plan = trigger_time_in_plan(engine, args.plan_rows)
        print(f"trigger time inside PostgreSQL (EXPLAIN ANALYZE of one UPDATE of {args.plan_rows:,} processing events):")
        for outcome, (trigger_ms, calls, total_ms) in plan.items():
            print(f"  -> {outcome:<9} trigger {trigger_ms:7.1f} ms for {calls:,} calls   statement {total_ms:8.1f} ms   "
                  f"share {100 * trigger_ms / total_ms:4.1f} %")

        cost = statement_cost(engine, url, args.cost_batches, args.cost_events)
        print(f"trigger cost per recorded event (tracking functions, one commit each, a session listening; "
              f"median of {args.cost_batches} alternating batches of {args.cost_events}):")
        for outcome in ("complete", "fail"):
            off_us, on_us = cost[(outcome, False)], cost[(outcome, True)]
            print(f"  begin + {outcome:<8} triggers off {off_us:7.0f} µs   on {on_us:7.0f} µs   "
                  f"change {100 * (on_us - off_us) / off_us:+.1f} %")

        with tempfile.NamedTemporaryFile("w+", prefix="receiver-", suffix=".log") as log_file:
            results: dict[bool, list[float]] = {False: [], True: []}
            # One warm-up round first (not counted), then off/on in alternating order, so
            # neither side always runs on the colder or the busier moment.
            receiver_throughput(engine, url, args.load_events, args.concurrency, rng, log_file)
            for round_number in range(args.rounds):
                for enabled in ((False, True) if round_number % 2 == 0 else (True, False)):
                    set_triggers(engine, enabled)
                    results[enabled].append(receiver_throughput(engine, url, args.load_events, args.concurrency,
                                                                rng, log_file))
            set_triggers(engine, True)
        off, on = statistics.median(results[False]), statistics.median(results[True])
        print(f"trigger cost on the receiver: {args.load_events} events (5 % failing) x {args.rounds} round(s), "
              f"concurrency {args.concurrency}")
        print(f"  triggers off {off:7.1f} requests/s   on {on:7.1f} requests/s   change {100 * (on - off) / off:+.1f} %"
              f"   (rounds: off {', '.join(f'{v:.0f}' for v in results[False])}; "
              f"on {', '.join(f'{v:.0f}' for v in results[True])})")
        engine.dispose()
        p95 = percentile([v * 1000 for v in detect], 95)
        if duplicates or p95 > 5000:
            print("FAILED: " + ("a message was sent twice" if duplicates else f"p95 {p95:.0f} ms is over 5 s"))
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
