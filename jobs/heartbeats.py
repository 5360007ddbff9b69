"""Heartbeats of the long-running processes, and when each one counts as gone.

``watch`` records a beat in every evaluation (in the evaluation's own transaction, so a
beat means the rules were judged), ``schedule`` every minute. :func:`stale` is the pure
judgement the verdict, the Alerts page and the metrics share: a process that has not beaten
within its allowance, or never did, is not running, and with it the alert rules (or the
retries and sweeps) stop.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from core.settings import Settings
from core.sql import load_package

SQL = load_package("jobs", "heartbeats.sql")
PROCESSES = ("watch", "schedule")
# `schedule` beats every minute and runs `retry` every minute and `sweep` every five:
# three missed beats and it is gone.
SCHEDULE_BEAT = timedelta(minutes=1)
SCHEDULE_ALLOWANCE = 3 * SCHEDULE_BEAT
# `watch` evaluates every MONITOR_ALERT_INTERVAL_S; as `schedule`'s `watch` entry it runs
# once a minute. Gone after three missed intervals, and never sooner than three minutes.
WATCH_INTERVALS = 3
WATCH_MIN_ALLOWANCE = timedelta(minutes=3)


def beat(conn, process: str, *, now: datetime, host: str | None = None,
         details: Mapping[str, Any] | None = None) -> None:
    """Record that ``process`` is alive at ``now``."""
    SQL.execute(conn, "beat", process=process, now=now, host=host or socket.gethostname(),
                details=json.dumps(dict(details or {}), default=str),
                restart_after=f"{int(allowance(process, None).total_seconds())} seconds")


def allowance(process: str, settings: Settings | None) -> timedelta:
    """How long ``process`` may go without a beat before it counts as not running."""
    if process == "schedule":
        return SCHEDULE_ALLOWANCE
    interval = timedelta(seconds=settings.MONITOR_ALERT_INTERVAL_S) if settings else timedelta(0)
    return max(WATCH_MIN_ALLOWANCE, WATCH_INTERVALS * interval)


@dataclass(frozen=True)
class Staleness:
    process: str
    last_beat_at: datetime | None  # None: never ran on this database
    allowance: timedelta

    def summary(self) -> str:
        what = {"watch": "alerting is off: no `watch` process has evaluated the alert rules",
                "schedule": "`schedule` is not running: due retries and sweeps have stopped"}[self.process]
        if self.last_beat_at is None:
            return f"{what[0].upper()}{what[1:]} (it never ran on this database)"
        return f"{what[0].upper()}{what[1:]} (last seen {self.last_beat_at:%Y-%m-%d %H:%M} UTC)"


def stale(rows: list[Mapping[str, Any]], *, now: datetime, settings: Settings) -> list[Staleness]:
    """The processes that have not beaten within their allowance at ``now`` (pure)."""
    beats = {row["process"]: row["beat_at"] for row in rows}
    gone = []
    for process in PROCESSES:
        limit = allowance(process, settings)
        last = beats.get(process)
        if last is None or last < now - limit:
            gone.append(Staleness(process, last, limit))
    return gone


def read(bind) -> list[dict[str, Any]]:
    """Every process's last beat."""
    return SQL.all(bind, "heartbeats")
