"""The password throttle under a burst of concurrent login attempts.

    python -m bench.login_throttle_bench                  # 80 submits from 1 and from 80 addresses
    python -m bench.login_throttle_bench --submits 30     # the test's burst

Each submit takes a turn with ``dashboard.throttle.take_turn`` (one statement that checks and
counts, on a throwaway database) on its own connection, all released at once. Prints, for a
burst from one address and a burst from as many addresses as submits, how many got a real
guess (the policy's limit: 3 per address, 10 for the account) and the latency of a turn
(p50, p95, max), so the cost of serialising on the throttle's rows is visible. Exits 1 when
more guesses got through than the policy allows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import datetime, timezone

import sqlalchemy as sa

from dashboard import throttle
from devharness import ThrowawayDatabase

ACCOUNT = throttle.account_key("bench")


def burst(url: str, clients: list[str]) -> tuple[int, list[float]]:
    """(attempts granted, seconds each turn took) for one simultaneous burst."""
    engine = sa.create_engine(url, pool_size=len(clients), max_overflow=0, hide_parameters=True)
    try:
        with engine.begin() as conn:  # warm the pool: the burst measures turns, not connects
            conn.execute(sa.text("TRUNCATE login_throttle"))
        conns = [engine.connect() for _ in clients]
        for conn in conns:
            conn.close()
        start = threading.Barrier(len(clients))
        waits: list[float] = [0.0] * len(clients)
        took: list[float] = [0.0] * len(clients)
        now = datetime.now(timezone.utc)

        def attempt(i: int) -> None:
            start.wait()
            began = time.perf_counter()
            waits[i] = throttle.take_turn(engine, client=throttle.client_key(clients[i]), account=ACCOUNT, now=now)
            took[i] = time.perf_counter() - began

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(1 for wait in waits if wait == 0), took
    finally:
        engine.dispose()


def describe(label: str, granted: int, took: list[float], allowed: int) -> bool:
    ordered = sorted(took)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(f"{label}: {granted} real guesses of {len(took)} submits (policy: at most {allowed}); turn "
          f"p50 {statistics.median(took) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
    return granted <= allowed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 80: each submit holds a connection, and PostgreSQL allows 100 by default.
    parser.add_argument("--submits", type=int, default=80, help="concurrent submits per burst")
    args = parser.parse_args(argv)
    policy = throttle.DEFAULT_POLICY
    with ThrowawayDatabase() as db:
        ok = describe("one address", *burst(db.url, ["203.0.113.7"] * args.submits), policy.client_free)
        ok &= describe("many addresses", *burst(db.url, [f"198.51.{i // 250}.{i % 250}" for i in range(args.submits)]),
                       policy.account_free)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
