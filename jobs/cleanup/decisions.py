"""Cleanup's decisions: what becomes of one stale pending registration, judged from what
Stripe says about its Checkout Sessions. Pure functions (and a small index of listed
sessions), so each rule is a row in a table of test cases; :mod:`jobs.cleanup.registrations`
asks Stripe and applies them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from core import checkout

# Why a registration was archived: registrations_archive.archive_reason accepts exactly
# these (a CHECK constraint, tested against this list).
SESSION_EXPIRED = "session_expired"      # Stripe says every session of it expired unpaid
SESSION_NOT_FOUND = "session_not_found"  # Stripe has no session with the recorded id
NO_SESSION = "no_session"                # checkout never started: no session recorded or found
ARCHIVE_REASONS = (SESSION_EXPIRED, SESSION_NOT_FOUND, NO_SESSION)

# A registration's Checkout Session is created right around the registration. Sessions
# created in this window are listed once per page of stale rows, which finds the session of
# a row that never stored its session id (client_reference_id is the registration id) and
# saves one retrieve per row.
SESSION_SEARCH_BEFORE = timedelta(hours=1)
SESSION_SEARCH_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Decision:
    """What cleanup does with one stale pending registration, and why."""

    action: str  # "archive", "reconcile" (paid: never removed), "keep", "unchecked"
    reason: str
    session_status: str | None = None
    payment_status: str | None = None
    session_id: str | None = None  # the paid session, for "reconcile"


def slim_session(session: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields cleanup reads, so thousands of listed sessions stay small in memory."""
    return {key: session.get(key) for key in ("id", "status", "payment_status", "client_reference_id", "created")}


def key_mode(api_key: str | None) -> str | None:
    """'live' or 'test' for sk_/rk_ keys, None when it cannot be told."""
    for mode in ("live", "test"):
        if api_key and f"_{mode}_" in api_key:
            return mode
    return None


def session_mode(session_id: str) -> str | None:
    for mode in ("live", "test"):
        if session_id.startswith(f"cs_{mode}_"):
            return mode
    return None


def other_mode(session_id: str | None, api_key_mode: str | None) -> bool:
    """True when the session is known to belong to the other Stripe mode than the key's."""
    return bool(session_id and api_key_mode and session_mode(session_id) not in (None, api_key_mode))


def decide(session_id: str | None, own_session: Mapping[str, Any] | None,
           related_sessions: Iterable[Mapping[str, Any]] = (), *, api_key_mode: str | None = None) -> Decision:
    """Decide from what Stripe said: ``own_session`` is the row's session (None: Stripe has no
    such session), ``related_sessions`` those carrying the registration id as
    client_reference_id (a customer may have started checkout more than once)."""
    if other_mode(session_id, api_key_mode):
        # A test key cannot see live sessions: "no such session" would be a lie.
        return Decision("unchecked", "other_stripe_mode")
    sessions = [own_session] if own_session else []
    sessions += [s for s in related_sessions if not own_session or s["id"] != own_session["id"]]
    shown = sessions[0] if sessions else {}
    facts = {"session_status": shown.get("status"), "payment_status": shown.get("payment_status")}
    for session in sessions:
        if session.get("payment_status") in checkout.PAID_STATUSES:
            return Decision("reconcile", "paid", session.get("status"), session.get("payment_status"),
                            session_id=session.get("id"))
    for session in sessions:
        if session.get("status") == "open":
            return Decision("keep", "session_open", "open", session.get("payment_status"))
    for session in sessions:
        if session.get("status") == "complete":
            # Delayed payment methods (bank debits) complete unpaid and are paid days later.
            return Decision("keep", "awaiting_payment", "complete", session.get("payment_status"))
    if sessions:
        return Decision("archive", SESSION_EXPIRED, **facts)
    if session_id:
        return Decision("archive", SESSION_NOT_FOUND)
    return Decision("archive", NO_SESSION)


class SessionIndex:
    """Checkout Sessions listed from Stripe by creation window, indexed by id and by
    client_reference_id. Windows arrive in increasing order (rows are read oldest first),
    so each second of Stripe's history is listed at most once per run."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.by_id: dict[str, dict] = {}
        self.by_reference: dict[str, list[dict]] = defaultdict(list)
        self.covered_until: int | None = None

    def cover(self, start: datetime, end: datetime) -> None:
        start_s, end_s = math.floor(start.timestamp()), math.ceil(end.timestamp())
        if self.covered_until is not None:
            if end_s <= self.covered_until:
                return
            start_s = max(start_s, self.covered_until)
        for session in self.gateway.iter_checkout_sessions(created_gte=start_s, created_lt=end_s):
            self.add(slim_session(session))
        self.covered_until = end_s

    def add(self, session: dict) -> None:
        if session["id"] in self.by_id:
            return
        self.by_id[session["id"]] = session
        if session.get("client_reference_id"):
            self.by_reference[session["client_reference_id"]].append(session)

    def session(self, session_id: str) -> dict | None:
        """The session by id, from the listing or retrieved; None when Stripe has none."""
        if session_id not in self.by_id:
            found = self.gateway.retrieve_checkout_session(session_id)
            if found is None:
                return None
            self.add(slim_session(found))
        return self.by_id[session_id]

    def prune(self, before: datetime) -> None:
        """Forget sessions no later row's window can reach."""
        limit = before.timestamp()
        for session_id in [sid for sid, s in self.by_id.items() if (s.get("created") or 0) < limit]:
            session = self.by_id.pop(session_id)
            related = self.by_reference.get(session.get("client_reference_id") or "")
            if related is not None:
                related[:] = [s for s in related if s["id"] != session_id]
                if not related:
                    del self.by_reference[session["client_reference_id"]]


def search_windows(created: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Merged [created - before, created + after) windows of sorted creation times."""
    windows: list[tuple[datetime, datetime]] = []
    for moment in created:
        start, end = moment - SESSION_SEARCH_BEFORE, moment + SESSION_SEARCH_AFTER
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows
