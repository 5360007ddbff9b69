"""The alert life cycle, Alertmanager-like: pending -> firing -> resolved, one alert per fingerprint.

``evaluate(engine, now=..., settings=..., channels=[...])`` runs every rule's query, asks the
rule which conditions hold, and moves each fingerprint along, in one transaction under an
advisory lock (several watch processes evaluate in turn; the second finds nothing to do):

- a condition seen for the first time is *pending*; it fires once it has held for the rule's
  hold time (at once for most rules). A pending condition that clears leaves nothing behind.
- a *firing* alert is refreshed while it holds; it is *resolved* when its condition clears.
- notifications are queued in ``alert_notifications`` (one per channel): ``firing`` when it
  fires (and again if its severity rises), ``reminder`` at most every
  MONITOR_ALERT_REMINDER_HOURS while it fires unacknowledged, ``resolved`` when it clears
  (only if people were told it fired). A silenced fingerprint queues nothing while the
  silence lasts; a firing alert whose silence ends is then told as firing.

Every evaluation records a ``watch`` heartbeat (``jobs.heartbeats``) in its transaction.
A rule whose query fails is reported and skipped; its firing alerts are left as they are
(not knowing is not the same as all clear). Delivery is ``jobs.alerting.notify``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.sql import load_package
from jobs import heartbeats
from jobs.alerting.rules import RULES, SEVERITIES, Condition, Rule
from jobs.runtime import LOCK_NAMESPACE, error_line

SQL = load_package("jobs.alerting", "lifecycle.sql")
RULE_SQL = load_package("jobs.alerting", "rules.sql")


@dataclass
class Evaluation:
    """What one evaluation changed."""

    evaluated_at: datetime
    fired: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # fingerprints holding, not fired yet
    firing: int = 0  # alerts firing after this evaluation
    queued: int = 0  # notifications queued
    errors: dict[str, str] = field(default_factory=dict)  # rule -> why it could not be judged

    def as_dict(self) -> dict[str, Any]:
        return {"evaluated_at": self.evaluated_at.isoformat(), "fired": self.fired, "resolved": self.resolved,
                "pending": self.pending, "firing": self.firing, "queued": self.queued, "errors": self.errors}


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def judge(conn, rule: Rule, *, now: datetime, settings: Settings) -> list[Condition]:
    """One rule's conditions now (its query in a savepoint, so a failure spoils nothing else)."""
    with conn.begin_nested():
        rows = RULE_SQL.all(conn, rule.query, **rule.params(settings, now))
    return rule.evaluate(rows, now=now, settings=settings)


def evaluate(engine: Engine, *, now: datetime, settings: Settings, channels: Sequence[str],
             rules: dict[str, Rule] | None = None) -> Evaluation:
    """Judge every rule at ``now`` and move alerts along; queue notifications for ``channels``."""
    rules = RULES if rules is None else rules
    report = Evaluation(evaluated_at=now)
    reminder_every = timedelta(hours=settings.MONITOR_ALERT_REMINDER_HOURS)
    with engine.begin() as conn:
        SQL.execute(conn, "evaluation_lock", ns=LOCK_NAMESPACE)
        current: dict[str, dict[str, Condition]] = {}
        for rule in rules.values():
            try:
                current[rule.name] = {rule.fingerprint(c): c for c in judge(conn, rule, now=now, settings=settings)}
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:  # the database went away: not this rule's fault
                    raise
                report.errors[rule.name] = error_line(exc)
            except Exception as exc:  # one broken rule must not silence the others
                report.errors[rule.name] = error_line(exc)

        firing = {row["fingerprint"]: row for row in SQL.all(conn, "firing_alerts")}
        silenced = {row["fingerprint"] for row in SQL.all(conn, "silenced_fingerprints", now=now)}
        state = {row["alert_id"]: row for row in SQL.all(conn, "notification_state",
                                                         ids=[row["id"] for row in firing.values()])}

        def queue(alert_id: int, kind: str, sequence: int) -> None:
            for channel in channels:
                if SQL.one(conn, "queue_notification", alert_id=alert_id, channel=channel, kind=kind,
                           sequence=sequence, now=now):
                    report.queued += 1

        for rule_name, conditions in current.items():
            rule = rules[rule_name]
            for fingerprint, condition in conditions.items():
                details = _json(condition.details)
                alert = firing.get(fingerprint)
                if alert is not None:
                    SQL.execute(conn, "refresh_alert", id=alert["id"], severity=condition.severity,
                                summary=condition.summary, details=details, now=now)
                    if fingerprint in silenced:
                        continue
                    seen = state.get(alert["id"])
                    last_sequence = seen["last_sequence"] if seen else -1
                    if seen is None or not seen["firing_queued"]:
                        queue(alert["id"], "firing", last_sequence + 1)  # silence over, or first channel
                    elif _rank(condition.severity) > _rank(alert["severity"]):
                        queue(alert["id"], "firing", last_sequence + 1)  # escalated
                    elif alert["acknowledged_at"] is None and seen["last_queued_at"] <= now - reminder_every:
                        queue(alert["id"], "reminder", last_sequence + 1)
                    continue
                pending = SQL.one(conn, "upsert_pending", fingerprint=fingerprint, rule=rule.name,
                                  severity=condition.severity, summary=condition.summary, details=details,
                                  started_at=condition.started_at, now=now)
                if now - pending["first_seen_at"] < rule.hold(settings):
                    report.pending.append(fingerprint)
                    continue
                alert_id = SQL.scalar(conn, "insert_alert", rule=rule.name, fingerprint=fingerprint,
                                      severity=condition.severity, summary=condition.summary, details=details,
                                      started_at=min(pending["started_at"], now), now=now, page=rule.page)
                if alert_id is None:  # fired meanwhile by an evaluation outside the lock (none should exist)
                    continue
                report.fired.append({"id": alert_id, "rule": rule.name, "fingerprint": fingerprint,
                                     "severity": condition.severity, "summary": condition.summary})
                if fingerprint not in silenced:
                    queue(alert_id, "firing", 0)
            SQL.execute(conn, "forget_pending", rule=rule.name,
                        keep=[fp for fp in report.pending if fp in conditions])
            for fingerprint, alert in firing.items():
                if alert["rule"] != rule_name or fingerprint in conditions:
                    continue
                if SQL.scalar(conn, "resolve_alert", id=alert["id"], now=now) is None:
                    continue
                report.resolved.append({"id": alert["id"], "rule": alert["rule"], "fingerprint": fingerprint,
                                        "summary": alert["summary"]})
                seen = state.get(alert["id"])
                if seen is not None and seen["firing_queued"]:
                    queue(alert["id"], "resolved", 0)
        report.firing = int(SQL.scalar(conn, "firing_count"))
        # The watcher watched: this evaluation ran (the verdict says alerting is off without it).
        heartbeats.beat(conn, "watch", now=now, details={"firing": report.firing, "errors": len(report.errors)})
    return report
