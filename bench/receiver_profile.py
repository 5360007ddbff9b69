"""``python bench/receiver_load.py --round-trips``: the delivery path's round trips, commits
and SQL time, measured in this process on the reference receiver without HTTP.

Round trips are counted on the wire: psycopg runs on its Python libpq wrapper
(``PSYCOPG_IMPL=python``, this process re-executes itself to get it), whose every query sent
outside pipeline mode is one request and one answer. A statement sent while the session is
outside a transaction commits on its own (autocommit); the others commit with COMMIT.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

SENDERS = ("exec_", "exec_params", "exec_prepared", "prepare", "send_query", "send_query_params",
           "send_prepare", "send_query_prepared", "describe_prepared", "send_describe_prepared",
           "describe_portal", "send_describe_portal")
REPEATS = 5


class WireCounter:
    """Counts what psycopg sends, per thread, by kind: ping (the pool's pre-ping of the
    connection it hands out, SQLAlchemy's ``;`` on psycopg), begin, commit, rollback,
    autocommit (a statement outside a transaction: it commits by itself), statement (inside
    one)."""

    def __init__(self):
        self.local = threading.local()

    @property
    def counts(self) -> Counter:
        if not hasattr(self.local, "counts"):
            self.local.counts = Counter()
        return self.local.counts

    def install(self) -> None:
        from psycopg import pq
        from psycopg.pq import pq_ctypes

        counter = self
        for name in SENDERS:
            original = getattr(pq_ctypes.PGconn, name, None)
            if original is None:
                continue

            def wrapped(pgconn, command=None, *args, _original=original, **kwargs):
                text = command if isinstance(command, bytes) else b""
                word = text.lstrip().split(None, 1)[0].upper() if text.strip() else b""
                if text.strip() == b";":
                    counter.counts["ping"] += 1
                elif word in (b"BEGIN", b"COMMIT", b"ROLLBACK"):
                    counter.counts[word.decode().lower()] += 1
                elif pgconn.transaction_status == pq.TransactionStatus.IDLE:
                    counter.counts["autocommit"] += 1
                else:
                    counter.counts["statement"] += 1
                return _original(pgconn, command, *args, **kwargs)

            setattr(pq_ctypes.PGconn, name, wrapped)


def signed(body: str, secret: str) -> str:
    import stripe

    return stripe.WebhookSignature.generate_signature_header(body, secret)


def main(args) -> int:
    if os.environ.get("PSYCOPG_IMPL") != "python":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PSYCOPG_IMPL": "python"})
    import psycopg

    assert psycopg.pq.__impl__ == "python", psycopg.pq.__impl__
    import sqlalchemy as sa
    from receiver_load import SECRET

    from core.sql import Statements, parse
    from devharness import ThrowawayDatabase
    from local_stripe.objects import checkout_session_event

    sql = Statements()
    sql.add(parse((Path(__file__).parent / "receiver_profile.sql").read_text(encoding="utf-8"),
                  "bench/receiver_profile.sql"))
    wire = WireCounter()
    wire.install()

    with ThrowawayDatabase() as database:
        engine = sa.create_engine(database.url, hide_parameters=True)
        with engine.begin() as conn:
            sql.execute(conn, "database_track_functions")
        os.environ["DATABASE_URL"] = database.url
        from tracking import receiver as module

        print(f"receiver from {Path(module.__file__).resolve().parent.parent}")
        receiver = module.Receiver(webhook_secret=SECRET)
        receiver.start()

        def ignored():
            return json.dumps({"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": "payment_intent.created",
                               "created": 1700000000, "livemode": False,
                               "data": {"object": {"id": "pi_1", "object": "payment_intent"}}})

        def paid():
            reg_id = str(uuid.uuid4())
            with engine.begin() as conn:
                sql.execute(conn, "insert_registration", id=reg_id, email=f"{reg_id[:8]}@example.com")
            return json.dumps(checkout_session_event("checkout.session.completed", registration_id=reg_id,
                                                     amount_total=2500, created=1700000000))

        def failing():
            event = checkout_session_event("checkout.session.completed", registration_id=str(uuid.uuid4()),
                                           amount_total=2500, created=1700000000)
            del event["data"]["object"]["payment_status"]
            return json.dumps(event)

        def deliver(body: str) -> tuple[Counter, str]:
            wire.counts.clear()
            status, answer = receiver.deliver(body.encode(), signed(body, SECRET))
            return Counter(wire.counts), f"{status} {answer.get('status')}"

        for _ in range(10):  # past psycopg's prepare threshold, so steady state is measured
            deliver(ignored())
            deliver(paid())
        duplicate = ignored()
        deliver(duplicate)
        scenarios = {"new event, handler ignores it": ignored, "paid checkout completes a registration": paid,
                     "duplicate of a completed event": lambda: duplicate, "validation failure": failing}
        print(f"{'delivery':42} {'answer':15} {'trips':>5} {'ping':>4} {'BEGIN':>5} {'COMMIT':>6} {'ROLLBK':>6} "
              f"{'autocommit':>10} {'in txn':>6} {'commits':>7}")
        for name, make in scenarios.items():
            runs = [deliver(make()) for _ in range(REPEATS)]
            counts, answer = runs[-1]
            trips = sum(counts.values())
            commits = counts["commit"] + counts["autocommit"]
            same = all(run == runs[-1][0] for run, _ in runs)
            print(f"{name:42} {answer:15} {trips:5} {counts['ping']:4} {counts['begin']:5} {counts['commit']:6} "
                  f"{counts['rollback']:6} "
                  f"{counts['autocommit']:10} {counts['statement']:6} {commits:7}{'' if same else '  (varied)'}")

        # Time in the SQL functions over a series of new events, from the statistics the
        # receiver's sessions report when they end.
        with engine.begin() as conn:
            sql.execute(conn, "reset_function_times")
        receiver.close()
        receiver.engine = None
        receiver.tracker = None
        receiver.start()
        series = 300
        for _ in range(series):
            deliver(ignored())
        receiver.close()
        import time

        time.sleep(1.5)  # sessions report their statistics as they exit
        with engine.connect() as conn:
            rows = sql.execute(conn, "function_times").all()
        print(f"\nSQL functions over {series} new events (track_functions; self = minus the functions it called):")
        print(f"  {'function':42} {'calls':>6} {'total ms':>9} {'self ms':>8} {'self us/delivery':>16}")
        for row in rows:
            print(f"  {row.function:42} {row.calls:6} {row.total_ms:9} {row.self_ms:8} "
                  f"{float(row.self_ms) * 1000 / series:16.0f}")

        print("\nEXPLAIN ANALYZE (one new event, rolled back; trigger times are the row and statement triggers):")
        event_id = f"evt_explain_{uuid.uuid4().hex[:12]}"
        for title, names in (("the statements webhook_event_begin and _complete run",
                              ("explain_begin_insert", "explain_begin_attempt", "explain_complete_update",
                               "explain_complete_attempt")),
                             ("the functions as called", ("explain_begin_function", "explain_complete_function"))):
            print(f"-- {title}")
            for _ in range(2):  # the first of each is cold: keep the second
                with engine.connect() as conn:
                    with conn.begin() as txn:
                        plans = {name: [r[0] for r in sql.execute(conn, name, id=event_id)] for name in names}
                        txn.rollback()
            for name, lines in plans.items():
                print(f"  {name}:")
                for line in lines:
                    if "Trigger" in line or "Execution Time" in line or line == lines[0]:
                        print(f"    {line.strip()}")
        engine.dispose()
    return 0

