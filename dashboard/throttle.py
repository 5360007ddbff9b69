"""The password throttle, stored in PostgreSQL (``login_throttle``; its functions in migrations/functions/login_throttle.sql).

Shared by every dashboard process and replica and kept across restarts. Each attempt first
takes a turn with one statement that checks and counts (``login_throttle_take``): rows are
locked, so 30 simultaneous submits get ``client_free`` real guesses, not 30. Two keys:

- the client (its network address): after ``client_free`` failures each further attempt
  waits ``client_first_wait_s``, doubling up to ``client_max_wait_s``;
- the account: after ``account_free`` failures from anywhere, attempts are spaced
  ``account_interval_s`` apart. That slows a guesser who changes address without locking
  out the right password typed on another client: a client with no recent failure is let
  through the account's spacing, so only a client that has failed itself ever waits on it.

A client is its IPv4 address or its IPv6 /64 (``client_key``). Failures older than
``forget_after_s`` are forgotten and their rows deleted (migrations/functions/login_throttle.sql). Times are passed
in (``now``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from core.sql import load_package

SQL = load_package("dashboard", "throttle.sql")


@dataclass(frozen=True)
class ThrottlePolicy:
    client_free: int = 3
    client_first_wait_s: float = 5.0
    client_max_wait_s: float = 300.0
    account_free: int = 10
    account_interval_s: float = 2.0
    forget_after_s: float = 3600.0


DEFAULT_POLICY = ThrottlePolicy()


def client_key(address: str | None) -> str:
    """The key a client's failures count under: its IPv4 address, or its IPv6 /64.

    One IPv6 subscriber (a home, a cloud server) gets a whole /64 and may pick any address in
    it: counted by address, each guess could come from a fresh one."""
    if not address:
        return "client:local"
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return f"client:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return f"client:{ip.ipv4_mapped}"
        return f"client:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"client:{ip}"


def account_key(name: str) -> str:
    return f"account:{name}"


def take_turn(engine: Engine, *, client: str, account: str, now: datetime,
              policy: ThrottlePolicy = DEFAULT_POLICY) -> float:
    """Seconds this client must still wait (0 = check the password now; the try is counted)."""
    with engine.connect() as conn:
        SQL.execute(conn, "read_write_transaction")
        wait = SQL.scalar(conn, "take_turn", client=client, account=account, now=now,
                          client_free=policy.client_free, client_first_wait_s=policy.client_first_wait_s,
                          client_max_wait_s=policy.client_max_wait_s, account_free=policy.account_free,
                          account_interval_s=policy.account_interval_s, forget_after_s=policy.forget_after_s)
        conn.commit()
    return float(wait or 0.0)


def succeeded(engine: Engine, *, client: str, account: str) -> None:
    """The right password: forget this client's and the account's failures."""
    with engine.connect() as conn:
        SQL.execute(conn, "read_write_transaction")
        SQL.execute(conn, "succeeded", client=client, account=account)
        conn.commit()
