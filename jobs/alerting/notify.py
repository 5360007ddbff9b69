"""Delivering queued notifications: claim, send with retries, record every attempt.

``deliver(engine, now=..., channels=..., host=...)`` claims the due notifications of the
configured channels (``FOR UPDATE SKIP LOCKED`` plus a claim that expires, so several watch
processes never send one twice), sends each channel's share in its own thread (a channel
that hangs or fails never holds up the others), and records the outcome:

- within one claim a send is tried a few times with exponential backoff (``tenacity``);
- a notification still failing stays ``failed`` with ``next_attempt_at`` set, later claims
  try again (backoff doubling up to 10 minutes), for up to a day: delivery resumes on its
  own when the channel comes back;
- every attempt is appended to ``attempt_log`` (time, outcome, error, host).

A process that dies between sending and recording leaves its claim to expire, and the
notification is sent again: at-least-once, with the alert id in every message for
receivers that deduplicate.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from sqlalchemy.engine import Engine
from tenacity import Retrying, stop_after_attempt, wait_exponential

from jobs.alerting.channels import Channel, message
from jobs.alerting.lifecycle import SQL
from jobs.runtime import error_line

CLAIM_FOR = timedelta(minutes=2)  # longer than one claim's attempts can take
ATTEMPTS_PER_CLAIM = 3
GIVE_UP_AFTER = timedelta(days=1)
MAX_REDELIVERY_DELAY = timedelta(minutes=10)


def redelivery_delay(rounds: int) -> timedelta:
    """Wait before the next claim after ``rounds`` failed claims: 15 s, 30 s, ... at most 10 min."""
    return min(MAX_REDELIVERY_DELAY, timedelta(seconds=15 * 2 ** max(0, rounds - 1)))


@dataclass
class Delivery:
    notification_id: int
    alert_id: int
    channel: str
    kind: str
    ok: bool
    attempts: int
    error: str | None = None


@dataclass
class DeliveryReport:
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(d.ok for d in self.deliveries)

    @property
    def failed(self) -> int:
        return sum(not d.ok for d in self.deliveries)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed,
                "deliveries": [d.__dict__ for d in self.deliveries]}


def _send_with_retries(channel: Channel, body: dict, *, host: str, wait_multiplier: float) -> tuple[bool, list[dict]]:
    """Try a few times; return (delivered, one log entry per attempt)."""
    log: list[dict] = []
    retrying = Retrying(stop=stop_after_attempt(ATTEMPTS_PER_CLAIM), reraise=True,
                        wait=wait_exponential(multiplier=wait_multiplier, max=4 * wait_multiplier))
    try:
        for attempt in retrying:
            with attempt:
                started = time.time()
                try:
                    channel.send(body)
                except Exception as exc:
                    log.append({"at": started, "ok": False, "error": error_line(exc), "by": host})
                    raise
                log.append({"at": started, "ok": True, "by": host})
    except Exception:
        return False, log
    return True, log


def deliver(engine: Engine, *, now: datetime, channels: Mapping[str, Channel], dashboard_url: str | None,
            host: str | None = None, limit: int = 100, wait_multiplier: float = 0.5) -> DeliveryReport:
    """Send every due notification of ``channels`` once; see the module docstring."""
    host = host or f"{socket.gethostname()}:{id(engine):x}"
    report = DeliveryReport()
    if not channels:
        return report
    with engine.begin() as conn:
        ids = [row["id"] for row in SQL.all(conn, "claim_notifications", host=host, now=now,
                                            claimed_until=now + CLAIM_FOR, channels=list(channels), limit=limit)]
    if not ids:
        return report
    claimed = SQL.all(engine, "claimed_notifications", ids=ids)
    by_channel: dict[str, list[dict]] = {}
    for row in claimed:
        by_channel.setdefault(row["channel"], []).append(row)
    started = time.monotonic()

    def run_channel(name: str, rows: list[dict]) -> list[Delivery]:
        done = []
        for row in rows:
            # A channel with its own format (PagerDuty's events) builds its body from the row.
            body = getattr(channels[name], "message", message)(row, dashboard_url=dashboard_url)
            ok, log = _send_with_retries(channels[name], body, host=host, wait_multiplier=wait_multiplier)
            finished = now + timedelta(seconds=time.monotonic() - started)
            error = None if ok else log[-1]["error"]
            rounds = (row["attempts"] + len(log) + ATTEMPTS_PER_CLAIM - 1) // ATTEMPTS_PER_CLAIM
            next_attempt = (None if ok or finished - row["queued_at"] > GIVE_UP_AFTER
                            else finished + redelivery_delay(rounds))
            for entry in log:
                entry["at"] = datetime.fromtimestamp(entry["at"], tz=finished.tzinfo).isoformat()
            with engine.begin() as conn:
                alert_id = SQL.scalar(conn, "record_delivery", id=row["id"], host=host,
                                      status="sent" if ok else "failed", attempts=len(log), error=error,
                                      attempt_log=json.dumps(log), sent_at=finished if ok else None,
                                      next_attempt_at=next_attempt)
                if ok and alert_id is not None:
                    SQL.execute(conn, "mark_notified", id=alert_id, sent_at=finished)
            done.append(Delivery(row["id"], row["alert_id"], name, row["kind"], ok, len(log), error))
        return done

    with ThreadPoolExecutor(max_workers=len(by_channel), thread_name_prefix="alert-channel") as pool:
        for done in pool.map(lambda item: run_channel(*item), list(by_channel.items())):
            report.deliveries.extend(done)
    return report
