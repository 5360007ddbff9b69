"""What a person does with an alert (from the dashboard, through its write gateway):
acknowledge it, silence its fingerprint for a while, end a silence. Each is recorded with
who did it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from core.errors import MonitorError
from jobs.alerting import pagerduty
from jobs.alerting.lifecycle import SQL

# Channels whose incidents have an acknowledged state of their own.
ACKNOWLEDGING_CHANNELS = [pagerduty.NAME]

MAX_SILENCE = timedelta(days=30)


class AlertActionRefused(MonitorError):
    """The action cannot be done as asked (one line saying why)."""


def _actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise AlertActionRefused("say who you are: acknowledgements and silences are recorded with a name")
    return actor[:200]


def acknowledge(engine: Engine, alert_id: int, *, actor: str, now: datetime) -> None:
    """Mark a firing alert acknowledged by ``actor`` (no more reminders); PagerDuty, when it
    was told the alert fired, is told it is acknowledged (``watch`` delivers it)."""
    actor = _actor(actor)
    with engine.begin() as conn:
        if SQL.scalar(conn, "acknowledge_alert", alert_id=alert_id, actor=actor, now=now) is None:
            raise AlertActionRefused(f"alert {alert_id} is not firing, or was acknowledged already")
        SQL.execute(conn, "queue_acknowledgement", alert_id=alert_id, channels=ACKNOWLEDGING_CHANNELS, now=now)


def silence(engine: Engine, fingerprint: str, *, duration: timedelta, actor: str, now: datetime,
            reason: str | None = None) -> int:
    """Silence ``fingerprint`` for ``duration`` (at most 30 days); returns the silence's id."""
    actor = _actor(actor)
    if not timedelta(0) < duration <= MAX_SILENCE:
        raise AlertActionRefused("a silence lasts more than nothing and at most 30 days")
    with engine.begin() as conn:
        return int(SQL.scalar(conn, "silence_fingerprint", fingerprint=fingerprint, until=now + duration,
                              actor=actor, now=now, reason=(reason or "").strip()[:500] or None))


def end_silence(engine: Engine, fingerprint: str, *, now: datetime) -> int:
    """End the silences of ``fingerprint`` now; returns how many were in force."""
    with engine.begin() as conn:
        return len(SQL.all(conn, "end_silences", fingerprint=fingerprint, now=now))
