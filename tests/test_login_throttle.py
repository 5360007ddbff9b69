"""The password throttle in PostgreSQL: atomic under concurrency, shared, keyed by client and
by account, and never locking the right password out of another client."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.db import create_dashboard_engine
from dashboard import auth, throttle

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
POLICY = throttle.DEFAULT_POLICY
ACCOUNT = throttle.account_key(auth.PASSWORD_ACCOUNT)


@pytest.fixture
def dashboard_pool(db):
    """The dashboard's own engine (read-only sessions): the throttle must work through it."""
    engine = create_dashboard_engine()
    yield engine
    engine.dispose()


def take(engine, client: str, now: datetime) -> float:
    return throttle.take_turn(engine, client=throttle.client_key(client), account=ACCOUNT, now=now)


def concurrent_turns(engine, clients: list[str], now: datetime) -> list[float]:
    """Every client takes a turn at the same moment, each on its own connection."""
    start = threading.Barrier(len(clients))
    waits: list[float] = [None] * len(clients)  # type: ignore[list-item]

    def attempt(i: int) -> None:
        start.wait()
        waits[i] = take(engine, clients[i], now)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return waits


def test_thirty_concurrent_submits_from_one_client_get_three_guesses(db):
    engine = sa.create_engine(db.url, pool_size=30, max_overflow=0)
    try:
        waits = concurrent_turns(engine, ["203.0.113.7"] * 30, NOW)
    finally:
        engine.dispose()
    assert sum(1 for wait in waits if wait == 0) == POLICY.client_free  # 3 real guesses, not 30
    assert all(wait > 0 for wait in waits if wait != 0)


def test_thirty_concurrent_submits_from_thirty_clients_are_capped_by_the_account(db):
    engine = sa.create_engine(db.url, pool_size=30, max_overflow=0)
    try:
        waits = concurrent_turns(engine, [f"198.51.100.{i}" for i in range(30)], NOW)
    finally:
        engine.dispose()
    assert sum(1 for wait in waits if wait == 0) == POLICY.account_free


def test_waits_double_per_client_and_are_shared_by_every_process(db, dashboard_pool):
    waits = []
    now = NOW
    for _ in range(6):
        wait = take(dashboard_pool, "203.0.113.7", now)
        waits.append(wait)
        now += timedelta(seconds=wait)  # the attacker comes back exactly when allowed
        if wait:
            assert take(dashboard_pool, "203.0.113.7", now) == 0  # its turn, counted
    assert waits == [0, 0, 0, 5, 10, 20]
    # Another process (a second replica, or the dashboard after a restart) sees the same count.
    other = create_dashboard_engine()
    try:
        assert take(other, "203.0.113.7", now) == pytest.approx(40)  # after the 6th failure
    finally:
        other.dispose()


def test_an_attacker_elsewhere_does_not_lock_out_the_right_password(db, dashboard_pool):
    now = NOW
    for _ in range(200):  # one wrong guess whenever the throttle lets the attacker's address try
        wait = take(dashboard_pool, "203.0.113.66", now)
        now += timedelta(seconds=max(wait, 1))
    # The administrator, at another address, waits at most the account's spacing, then tries.
    wait = take(dashboard_pool, "192.0.2.10", now)
    assert wait <= POLICY.account_interval_s
    if wait:
        now += timedelta(seconds=wait)
        assert take(dashboard_pool, "192.0.2.10", now) == 0
    throttle.succeeded(dashboard_pool, client=throttle.client_key("192.0.2.10"), account=ACCOUNT)
    assert take(dashboard_pool, "192.0.2.10", now) == 0  # the right password cleared the account's count


def test_old_failures_are_forgotten(db, dashboard_pool):
    for i in range(3):
        take(dashboard_pool, "203.0.113.7", NOW)
    assert take(dashboard_pool, "203.0.113.7", NOW) > 0
    later = NOW + timedelta(seconds=POLICY.forget_after_s + POLICY.client_first_wait_s + 1)
    assert [take(dashboard_pool, "203.0.113.7", later) for _ in range(3)] == [0, 0, 0]


def test_a_read_only_session_stays_read_only_for_everything_else(db, dashboard_pool):
    take(dashboard_pool, "203.0.113.7", NOW)
    with dashboard_pool.connect() as conn, pytest.raises(sa.exc.InternalError, match="read-only"):
        conn.execute(sa.text("DELETE FROM login_throttle"))


@pytest.mark.parametrize("headers, peer, expected", [
    ({}, "203.0.113.7", "203.0.113.7"),
    ({"X-Forwarded-For": "10.0.0.1"}, "203.0.113.7", "203.0.113.7"),      # only a local proxy is believed
    ({"X-Forwarded-For": "1.2.3.4, 198.51.100.20"}, None, "198.51.100.20"),  # the entry the proxy appended
    ({"X-Real-IP": "198.51.100.21"}, None, "198.51.100.21"),
    ({}, None, None),
])
def test_client_address(headers, peer, expected):
    assert auth.client_address(headers, peer) == expected
