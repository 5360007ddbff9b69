"""The password throttle in PostgreSQL: atomic under concurrency, shared, keyed by client and
by account, and never locking the right password out of another client."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.db import create_dashboard_engine
from core.errors import ConfigError
from core.settings import get_settings, parse_networks
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
    clients = [f"198.51.100.{i}" for i in range(30)]
    engine = sa.create_engine(db.url, pool_size=30, max_overflow=0)
    try:
        first = concurrent_turns(engine, clients, NOW)
        second = concurrent_turns(engine, clients, NOW + timedelta(seconds=POLICY.account_interval_s))
    finally:
        engine.dispose()
    # A client's first try never waits on the account; from its second on, the account's
    # spacing holds: one try every account_interval_s for all of them together.
    assert first == [0] * 30
    assert sum(1 for wait in second if wait == 0) == 1


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
    # The administrator, at another address with no failure of its own, tries at once.
    assert take(dashboard_pool, "192.0.2.10", now) == 0
    throttle.succeeded(dashboard_pool, client=throttle.client_key("192.0.2.10"), account=ACCOUNT)
    assert take(dashboard_pool, "192.0.2.10", now) == 0  # the right password cleared the account's count


def test_old_failures_are_forgotten(db, dashboard_pool):
    for _ in range(3):
        take(dashboard_pool, "203.0.113.7", NOW)
    assert take(dashboard_pool, "203.0.113.7", NOW) > 0
    later = NOW + timedelta(seconds=POLICY.forget_after_s + POLICY.client_first_wait_s + 1)
    assert [take(dashboard_pool, "203.0.113.7", later) for _ in range(3)] == [0, 0, 0]


def test_a_read_only_session_stays_read_only_for_everything_else(db, dashboard_pool):
    take(dashboard_pool, "203.0.113.7", NOW)
    with dashboard_pool.connect() as conn, pytest.raises(sa.exc.InternalError, match="read-only"):
        conn.execute(sa.text("DELETE FROM login_throttle"))


def test_a_guesser_spread_over_many_addresses_never_makes_a_fresh_client_wait(db, dashboard_pool):
    now = NOW
    for round_ in range(5):  # 50 addresses, each guessing as often as the throttle allows
        for i in range(50):
            take(dashboard_pool, f"198.51.100.{i}", now)
        assert take(dashboard_pool, f"192.0.2.{round_}", now) == 0  # someone else's first try
        now += timedelta(seconds=1)


def test_ipv6_clients_are_counted_per_64(db, dashboard_pool):
    prefix = "2001:db8:aa:bb"
    waits = [take(dashboard_pool, f"{prefix}:{i:x}:{i:x}:{i:x}:{i:x}", NOW) for i in range(1, 5)]
    assert waits == [0, 0, 0, POLICY.client_first_wait_s]  # four addresses, one /64: one client
    assert take(dashboard_pool, "2001:db8:aa:cc::1", NOW) == 0  # the next /64 is someone else
    assert throttle.client_key("2001:db8:aa:bb::1") == "client:2001:db8:aa:bb::/64"
    assert throttle.client_key("::ffff:192.0.2.7") == "client:192.0.2.7"


def throttle_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM login_throttle")).scalar_one()


def test_rows_of_clients_long_gone_expire(db, dashboard_pool):
    for i in range(30):
        take(dashboard_pool, f"198.51.100.{i}", NOW)
    assert throttle_rows(db) == 31  # 30 clients and the account
    later = NOW + timedelta(seconds=POLICY.forget_after_s + POLICY.client_max_wait_s + 1)
    take(dashboard_pool, "192.0.2.1", later)
    take(dashboard_pool, "192.0.2.2", later)
    assert throttle_rows(db) == 3  # the account and the two recent clients
    throttle.succeeded(dashboard_pool, client=throttle.client_key("192.0.2.2"), account=ACCOUNT)
    assert throttle_rows(db) == 2  # the right password: nothing left to remember of that client


LOCAL_PROXY = auth.LOOPBACK_NETWORKS
PROXIES = parse_networks("10.0.0.0/8, 192.168.1.5")


@pytest.mark.parametrize("headers, peer, proxies, expected", [
    ({}, "203.0.113.7", LOCAL_PROXY, "203.0.113.7"),
    ({"X-Forwarded-For": "10.0.0.1"}, "203.0.113.7", LOCAL_PROXY, "203.0.113.7"),  # only a trusted proxy is believed
    ({"X-Forwarded-For": "1.2.3.4, 198.51.100.20"}, None, LOCAL_PROXY, "198.51.100.20"),  # what the proxy appended
    ({"X-Real-IP": "198.51.100.21"}, None, LOCAL_PROXY, "198.51.100.21"),
    ({}, None, LOCAL_PROXY, None),
    # A proxy on another machine (Docker, Kubernetes, a load balancer), listed in MONITOR_TRUSTED_PROXIES:
    ({"X-Forwarded-For": "198.51.100.20"}, "10.1.2.3", PROXIES, "198.51.100.20"),
    ({"X-Forwarded-For": "6.6.6.6, 198.51.100.20, 192.168.1.5"}, "10.1.2.3", PROXIES, "198.51.100.20"),
    ({"X-Forwarded-For": "198.51.100.20"}, "10.1.2.3", LOCAL_PROXY, "10.1.2.3"),  # not listed: not believed
    ({"X-Forwarded-For": "198.51.100.20"}, None, PROXIES, None),  # loopback not listed any more
])
def test_client_address(headers, peer, proxies, expected):
    assert auth.client_address(headers, peer, proxies) == expected


def test_trusted_proxies_setting_names_a_bad_entry(monkeypatch):
    monkeypatch.setenv("MONITOR_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")
    with pytest.raises(ConfigError, match="MONITOR_TRUSTED_PROXIES.*'proxy.internal'"):
        get_settings()
    monkeypatch.setenv("MONITOR_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8")
    assert len(parse_networks(get_settings().MONITOR_TRUSTED_PROXIES)) == 2
