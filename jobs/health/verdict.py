"""The status verdict: healthy, degraded or down, with the reasons.

Computed once, here, for everything that shows it: the dashboard (top of the Overview and
the sidebar), ``python -m jobs status`` and the reference receiver's health check.
:func:`gather` reads the facts (the alert rules' own queries and a few more, see
``verdict.sql``); :func:`decide` is a pure function of those facts and ``now``, so tests are
tables of facts in, verdicts out. The alert rules' judgements are reused as they are, so the
verdict and the alerts never disagree about what "stuck" or "silent" means.

* **down**: payments are not being processed: the endpoint has gone silent, or the failure
  rate is at or above ``MONITOR_ALERT_FAILURE_RATE_CRITICAL``;
* **degraded**: something needs a look: failures well above the usual rate, stuck events,
  failed checkout events, open critical review items, missed events, a failed or overdue job,
  a firing alert;
* **healthy**: none of these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from sqlalchemy.engine import Connection, Engine

from core.formatting import counted
from core.settings import Settings
from core.sql import load_package
from jobs import heartbeats
from jobs.alerting.rules import RULES

SQL = load_package("jobs.health", "verdict.sql")
RULE_SQL = load_package("jobs.alerting", "rules.sql")

HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"
STATES = (HEALTHY, DEGRADED, DOWN)

# The alert rules whose judgement the verdict reuses, read through their own queries.
REUSED_RULES = ("silence", "stuck_events", "payment_event_failed", "review_needed", "job_failed")
# "Against the usual": the last hour compared with the week before it.
RECENT = timedelta(hours=1)
USUAL = timedelta(days=7)
# Well above the usual: at least twice the usual rate and 5 points more.
USUAL_FACTOR = 2.0
USUAL_MARGIN = 0.05


@dataclass(frozen=True)
class Reason:
    """One thing wrong now, and where the dashboard shows it."""

    code: str  # silence, failure_rate, stuck_events, payment_event_failed, review_critical, job_failed,
    # missed_events, alert, watch_stopped, schedule_stopped
    state: str  # degraded | down
    summary: str  # one line for people
    page: str  # dashboard page (URL path) showing it
    query: dict[str, Any] = field(default_factory=dict)  # that page's query parameters (str or list)

    def link(self, base_url: str | None = None) -> str:
        """The page's path (or full URL under ``base_url``) with its query parameters."""
        from urllib.parse import urlencode

        path = "/" + self.page + (("?" + urlencode(self.query, doseq=True)) if self.query else "")
        return (base_url.rstrip("/") + path) if base_url else path


@dataclass(frozen=True)
class Verdict:
    state: str
    reasons: tuple[Reason, ...]
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return self.state == HEALTHY

    def headline(self) -> str:
        if self.healthy:
            return "Healthy: webhooks are arriving and being processed; nothing needs a person."
        count = len(self.reasons)
        return f"{self.state.capitalize()}: {count} reason{'' if count == 1 else 's'}"

    def as_dict(self, base_url: str | None = None) -> dict[str, Any]:
        return {"status": self.state, "checked_at": self.checked_at.isoformat(),
                "reasons": [{**asdict(r), "link": r.link(base_url)} for r in self.reasons]}


@dataclass(frozen=True)
class Facts:
    """What :func:`decide` judges: each reused rule's rows, and the verdict's own queries' rows."""

    rules: Mapping[str, list[dict[str, Any]]]
    failure_rate: Mapping[str, Any]
    firing_alerts: list[dict[str, Any]]
    missed: Mapping[str, Any]
    # The processes' heartbeats (jobs.heartbeats); None: not read, nothing judged.
    heartbeats: list[dict[str, Any]] | None = None


def gather(bind: Engine | Connection, *, now: datetime, settings: Settings) -> Facts:
    """Read the facts in one read-only transaction (the dashboard's engine is enough)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return gather(conn, now=now, settings=settings)
    rules = {name: RULE_SQL.all(bind, RULES[name].query, **RULES[name].params(settings, now))
             for name in REUSED_RULES}
    recent_since = now - RECENT
    failure_rate = SQL.one(bind, "failure_rate_against_usual", now=now, recent_since=recent_since,
                           usual_since=recent_since - USUAL) or {}
    return Facts(rules=rules, failure_rate=dict(failure_rate),
                 firing_alerts=[dict(row) for row in SQL.all(bind, "firing_alerts")],
                 missed=dict(SQL.one(bind, "missed_events_unrecovered") or {}),
                 heartbeats=heartbeats.read(bind))


def status(bind: Engine | Connection, *, now: datetime, settings: Settings) -> Verdict:
    """The verdict now: :func:`gather` then :func:`decide`."""
    return decide(gather(bind, now=now, settings=settings), now=now, settings=settings)


def decide(facts: Facts, *, now: datetime, settings: Settings) -> Verdict:
    """The verdict of ``facts`` at ``now`` (pure: no clock, no database)."""
    reasons: list[Reason] = []

    def judged(name: str):
        return RULES[name].evaluate(list(facts.rules.get(name) or []), now=now, settings=settings)

    for condition in judged("silence"):
        reasons.append(Reason("silence", DOWN, condition.summary, "overview"))
    reasons.extend(_failure_rate(facts.failure_rate, settings))
    for condition in judged("stuck_events"):
        reasons.append(Reason("stuck_events", DEGRADED, condition.summary, "events", {"view": "stuck"}))
    failed_checkout = judged("payment_event_failed")  # one condition per event type: one reason
    if failed_checkout:
        failed = sum(int(c.details["failed"]) for c in failed_checkout)
        types = sorted(c.details["event_type"] for c in failed_checkout)
        summary = (failed_checkout[0].summary if len(failed_checkout) == 1 else
                   f"{counted(failed, 'failed checkout event')} ({len(types)} types): payments may not be recorded")
        reasons.append(Reason("payment_event_failed", DEGRADED, summary, "events",
                              {"status": "failed", "type": types if len(types) > 1 else types[0]}))
    for condition in judged("review_needed"):
        if condition.severity == "critical":
            reasons.append(Reason("review_critical", DEGRADED,
                                  f"{condition.summary}: open in the review queue", "reconciliation"))
    for condition in judged("job_failed"):
        reasons.append(Reason("job_failed", DEGRADED, condition.summary, "health",
                              {"job": condition.details["job"]}))
    open_missed = int(facts.missed.get("open_events") or 0)
    if open_missed:
        reasons.append(Reason("missed_events", DEGRADED,
                              f"{counted(open_missed, 'event')} Stripe sent never completed here "
                              "(found by the sweep)", "events", {"view": "missed"}))
    if facts.heartbeats is not None:
        for gone in heartbeats.stale(facts.heartbeats, now=now, settings=settings):
            if gone.process == "watch":
                reasons.append(Reason("watch_stopped", DEGRADED, gone.summary(), "alerts"))
            else:
                reasons.append(Reason("schedule_stopped", DEGRADED, gone.summary(), "health"))
    # A firing alert of a condition judged above is that reason already (a critical
    # review_needed alert is the review_critical reason).
    covered = {reason.code for reason in reasons}
    if "review_critical" in covered:
        covered.add("review_needed")
    for alert in facts.firing_alerts:
        if alert["rule"] in covered and not (alert["rule"] == "review_needed" and alert["severity"] != "critical"):
            continue
        reasons.append(Reason("alert", DEGRADED, f"Alert firing ({alert['severity']}): {alert['summary']}",
                              "alerts"))
    state = DOWN if any(r.state == DOWN for r in reasons) else DEGRADED if reasons else HEALTHY
    reasons.sort(key=lambda r: r.state != DOWN)  # down first, otherwise in the order above
    return Verdict(state, tuple(reasons), now)


def _failure_rate(row: Mapping[str, Any], settings: Settings) -> list[Reason]:
    """The last hour's failure rate: down at the critical share, degraded at the warning share
    or when well above the usual rate of the week before."""
    events, failed = int(row.get("recent_events") or 0), int(row.get("recent_failed") or 0)
    if events < settings.MONITOR_ALERT_FAILURE_MIN_EVENTS or failed == 0:
        return []
    rate = failed / events
    usual_events, usual_failed = int(row.get("usual_events") or 0), int(row.get("usual_failed") or 0)
    usual = usual_failed / usual_events if usual_events else None
    against = f" (usually {usual:.1%})" if usual is not None else ""
    summary = f"{rate:.0%} of the last hour's events failed ({failed:,} of {events:,}){against}"
    link = {"status": "failed"}
    if rate >= settings.MONITOR_ALERT_FAILURE_RATE_CRITICAL:
        return [Reason("failure_rate", DOWN, summary, "errors", link)]
    if rate >= settings.MONITOR_ALERT_FAILURE_RATE_WARNING or (
            usual is not None and rate >= usual * USUAL_FACTOR and rate - usual >= USUAL_MARGIN):
        return [Reason("failure_rate", DEGRADED, summary, "errors", link)]
    return []
