"""The alert rules: each one a named query in ``rules.sql`` and a pure function judging it.

A rule function takes the query's rows, ``now`` and the settings, and returns the
conditions that hold now (a list of ``Condition``; empty when all is well). It reads no
clock and touches no database, so tests are tables of rows in, conditions out. The
life cycle (pending -> firing -> resolved, notifications) is not a rule's business: see
``jobs.alerting.lifecycle``.

Adding a rule (the whole change):

1. a ``-- name: my_rule`` block in ``rules.sql`` returning the facts;
2. a function here decorated with ``@rule("my_rule", params=..., page=...)`` that turns the
   rows into conditions (``subject`` tells incidents apart: one alert per rule + subject);
3. the name in the ``alerts_rule_check`` constraint (a new migration) if it is not there
   yet, and a settings field for each threshold.

``RULES`` (name -> Rule) is what ``watch`` evaluates, in declaration order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from core.checkout import MISMATCH_KINDS
from core.formatting import counted
from core.settings import Settings
from jobs.schedule.timetable import load_schedule_quietly, missed_fire_time

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Condition:
    """One thing that is wrong right now, as a rule sees it."""

    subject: str  # tells incidents of one rule apart ("" when the rule has one incident)
    severity: str  # info | warning | critical
    summary: str  # one line for people
    started_at: datetime  # when the condition began (time to detect counts from here)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    name: str
    evaluate: Callable[..., list[Condition]]  # (rows, *, now, settings) -> conditions
    params: Callable[[Settings, datetime], dict[str, Any]]  # the query's parameters
    page: str  # dashboard page (URL path) showing the subject
    hold: Callable[[Settings], timedelta] = lambda settings: timedelta(0)
    query: str = ""  # named block in rules.sql; defaults to the rule's name

    def __post_init__(self) -> None:
        if not self.query:
            object.__setattr__(self, "query", self.name)

    def fingerprint(self, condition: Condition) -> str:
        return f"{self.name}:{condition.subject}" if condition.subject else self.name


RULES: dict[str, Rule] = {}


def rule(name: str, *, params: Callable[[Settings, datetime], dict[str, Any]], page: str,
         hold: Callable[[Settings], timedelta] | None = None, query: str | None = None):
    """Register the decorated function as the rule ``name``."""

    def register(function: Callable[..., list[Condition]]) -> Callable[..., list[Condition]]:
        if name in RULES:
            raise ValueError(f"alert rule {name!r} is defined twice")
        RULES[name] = Rule(name, function, params, page, hold or (lambda settings: timedelta(0)),
                           query or name)
        return function

    return register


def _at_most(moment: datetime | None, now: datetime) -> datetime:
    """A row's time, never later than ``now`` (rows written by the live clock in a test that passes an older now)."""
    return now if moment is None or moment > now else moment


def _minutes(value: float) -> str:
    minutes = value / 60
    if minutes >= 120:
        return f"{minutes / 60:.1f} h"
    return f"{minutes:.0f} min"


# --- the rules ------------------------------------------------------------------------------

@rule("payment_event_failed", page="errors",
      params=lambda s, now: {"since": now - timedelta(hours=s.MONITOR_ALERT_PAYMENT_LOOKBACK_HOURS)})
def payment_event_failed(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """Any failed checkout.session.* event is money at risk: critical at once, one alert per event type."""
    conditions = []
    for row in rows:
        failed, without_retry = int(row["failed"]), int(row["without_retry"] or 0)
        retry_note = ("no automatic retry will fix " + ("it" if failed == 1 else "them") if without_retry == failed
                      else f"{without_retry:,} without an automatic retry" if without_retry else "a retry is planned")
        conditions.append(Condition(
            subject=row["event_type"], severity="critical",
            summary=f"{counted(failed, 'failed ' + row['event_type'] + ' event')}: payments may not be recorded "
                    f"({retry_note})",
            started_at=_at_most(row["first_failed_at"], now),
            details={"event_type": row["event_type"], "failed": failed, "without_automatic_retry": without_retry,
                     "next_retry_at": row["next_retry_at"],
                     "first_failed_at": row["first_failed_at"], "last_failed_at": row["last_failed_at"],
                     "example_event_ids": list(row["example_event_ids"] or []),
                     "last_error": row["last_error"]}))
    return conditions


@rule("failure_rate", page="errors",
      params=lambda s, now: {"since": now - timedelta(minutes=s.MONITOR_ALERT_FAILURE_WINDOW_MINUTES), "until": now},
      hold=lambda s: timedelta(seconds=s.MONITOR_ALERT_FAILURE_HOLD_S))
def failure_rate(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """The share of failed events over the last minutes, once enough events arrived."""
    if not rows:
        return []
    events, failed = int(rows[0]["events"] or 0), int(rows[0]["failed"] or 0)
    if events < settings.MONITOR_ALERT_FAILURE_MIN_EVENTS or failed == 0:
        return []
    rate = failed / events
    if rate >= settings.MONITOR_ALERT_FAILURE_RATE_CRITICAL:
        severity, threshold = "critical", settings.MONITOR_ALERT_FAILURE_RATE_CRITICAL
    elif rate >= settings.MONITOR_ALERT_FAILURE_RATE_WARNING:
        severity, threshold = "warning", settings.MONITOR_ALERT_FAILURE_RATE_WARNING
    else:
        return []
    window = settings.MONITOR_ALERT_FAILURE_WINDOW_MINUTES
    return [Condition(
        subject="", severity=severity,
        summary=f"{rate:.0%} of webhook events failed in the last {window} min ({failed:,} of {events:,})",
        started_at=_at_most(rows[0]["first_failed_at"], now),
        details={"events": events, "failed": failed, "rate": round(rate, 4), "threshold": threshold,
                 "window_minutes": window})]


# Weeks of history the expected traffic at this time of the week is averaged over.
SILENCE_WEEKS = 4


@rule("silence", page="",
      params=lambda s, now: {"until": now, "baseline_hours": s.MONITOR_ALERT_SILENCE_BASELINE_HOURS,
                             "weeks": SILENCE_WEEKS})
def silence(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """No event for far longer than usual.

    Steady traffic (at least MONITOR_ALERT_SILENCE_MIN_EVENTS in the day before the last
    event): silent for MONITOR_ALERT_SILENCE_FACTOR times the day's average gap (and at least
    MONITOR_ALERT_SILENCE_MIN_MINUTES). A thinner day: the same time of the week over the last
    four weeks says how many events the silent span usually holds; silent once that is at
    least MONITOR_ALERT_SILENCE_FACTOR events (so a quiet weekend, quiet in the weeks before
    too, pages nobody). A quiet endpoint with neither never fires."""
    if not rows or rows[0]["last_event_at"] is None:
        return []
    last_event_at, baseline = rows[0]["last_event_at"], int(rows[0]["baseline_events"] or 0)
    silent_for = now - last_event_at
    floor = timedelta(minutes=settings.MONITOR_ALERT_SILENCE_MIN_MINUTES)
    if baseline < settings.MONITOR_ALERT_SILENCE_MIN_EVENTS:
        return _weekly_silence(rows[0], silent_for=silent_for, floor=floor, now=now, settings=settings)
    usual_gap = timedelta(hours=settings.MONITOR_ALERT_SILENCE_BASELINE_HOURS) / baseline
    threshold = max(floor, settings.MONITOR_ALERT_SILENCE_FACTOR * usual_gap)
    if silent_for <= threshold:
        return []
    return [Condition(
        subject="", severity="critical",
        summary=f"No webhook event for {_minutes(silent_for.total_seconds())} "
                f"(events usually arrive every {_minutes(usual_gap.total_seconds())})",
        started_at=last_event_at + threshold,
        details={"last_event_at": last_event_at, "silent_seconds": int(silent_for.total_seconds()),
                 "usual_gap_seconds": round(usual_gap.total_seconds(), 1),
                 "threshold_seconds": int(threshold.total_seconds()), "baseline_events": baseline})]


def _weekly_silence(row: dict, *, silent_for: timedelta, floor: timedelta, now: datetime,
                    settings: Settings) -> list[Condition]:
    weeks = int(row.get("weekly_weeks") or 0)
    if not weeks or silent_for <= floor:
        return []
    expected = int(row.get("weekly_events") or 0) / weeks
    if expected < settings.MONITOR_ALERT_SILENCE_FACTOR:
        return []
    return [Condition(
        subject="", severity="critical",
        summary=f"No webhook event for {_minutes(silent_for.total_seconds())} (at this time of the week "
                f"{expected:.0f} events usually arrive in that time)",
        started_at=now,
        details={"last_event_at": row["last_event_at"], "silent_seconds": int(silent_for.total_seconds()),
                 "expected_events": round(expected, 1), "weeks": weeks,
                 "baseline_events": int(row["baseline_events"] or 0)})]


@rule("stuck_events", page="events",
      params=lambda s, now: {"stuck_before": now - timedelta(minutes=s.MONITOR_STUCK_MINUTES)})
def stuck_events(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """Events 'processing' for longer than MONITOR_STUCK_MINUTES: a worker died or hangs."""
    if not rows or not rows[0]["stuck"]:
        return []
    stuck = int(rows[0]["stuck"])
    oldest = rows[0]["oldest_started_at"]
    return [Condition(
        subject="", severity="warning",
        summary=f"{counted(stuck, 'event')} stuck in processing for more than {settings.MONITOR_STUCK_MINUTES} min",
        started_at=_at_most(oldest + timedelta(minutes=settings.MONITOR_STUCK_MINUTES), now),
        details={"stuck": stuck, "oldest_started_at": oldest,
                 "example_event_ids": list(rows[0]["example_event_ids"] or [])})]


@rule("missed_events", page="reconciliation", params=lambda s, now: {})
def missed_events(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """Events Stripe sent that the app never recorded (found by the sweep, not yet recovered):
    one critical alert, the money at risk first in its summary."""
    if not rows:
        return []
    from core.checkout import format_money

    events = sum(int(row["events"]) for row in rows)
    money = [format_money(row["amount"], row["currency"]) for row in rows if row["amount"] is not None]
    money = [m for m in money if m]
    first_created = min(row["first_created_at"] for row in rows)
    first_forgotten = min(row["first_forgotten_at"] for row in rows)
    missed = f"{counted(events, 'event')} Stripe sent never reached the app"
    summary = (f"{', '.join(money)} at risk: {missed}" if money else missed) + \
        f" (Stripe forgets the first on {first_forgotten:%Y-%m-%d %H:%M} UTC; replay with `sweep --replay`)"
    examples = [event_id for row in rows for event_id in (row["example_event_ids"] or [])]
    return [Condition(
        subject="", severity="critical", summary=summary,
        started_at=_at_most(first_created, now),
        details={"events": events,
                 "money_at_risk": {row["currency"]: int(row["amount"]) for row in rows
                                   if row["amount"] is not None},
                 "first_created_at": first_created,
                 "first_found_at": min(row["first_found_at"] for row in rows),
                 "first_forgotten_at": first_forgotten, "example_event_ids": examples[:5]})]


@rule("review_needed", page="reconciliation", params=lambda s, now: {})
def review_needed(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """Reconciliation items waiting for a person: critical for a kind declared critical
    (completed_not_paid and paid_no_registration, see core.checkout.MISMATCH_KINDS), else warning."""
    by_severity: dict[str, list[dict]] = {"critical": [], "warning": []}
    for row in rows:
        declared = MISMATCH_KINDS.get(row["kind"], ("manual_review", "warning"))[1]
        by_severity["critical" if declared == "critical" else "warning"].append(row)
    conditions = []
    for severity, group in by_severity.items():
        if not group:
            continue
        items = sum(int(row["items"]) for row in group)
        kinds = {row["kind"]: int(row["items"]) for row in group}
        what = ("critical reconciliation " + ("item waits" if items == 1 else "items wait")
                + " for a person (paid without a registration, or completed without payment)"
                if severity == "critical"
                else "reconciliation " + ("item waits" if items == 1 else "items wait") + " for a person")
        conditions.append(Condition(
            subject=severity, severity=severity,
            summary=f"{items:,} {what} ({', '.join(f'{kind}: {n}' for kind, n in kinds.items())})",
            started_at=_at_most(min(row["oldest_at"] for row in group), now),
            details={"items": items, "kinds": kinds,
                     "example_item_ids": [i for row in group for i in (row["example_item_ids"] or [])][:5]}))
    return conditions


@rule("job_failed", page="health", params=lambda s, now: {"since": now - timedelta(days=30)})
def job_failed(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """A job whose last run failed, or a scheduled job that missed its time (one alert per job)."""
    grace = timedelta(minutes=settings.MONITOR_ALERT_JOB_GRACE_MINUTES)
    schedule = load_schedule_quietly(settings)
    conditions = []
    for row in rows:
        job = row["job"]
        if row["last_status"] == "failed":
            finished = row["last_done_finished_at"] or row["last_done_started_at"]
            conditions.append(Condition(
                subject=job, severity="warning", summary=f"The last {job} run failed: {row['last_error'] or 'no error recorded'}",
                started_at=_at_most(finished, now),
                details={"job": job, "run_id": row["last_done_run_id"], "error": row["last_error"],
                         "finished_at": finished}))
            continue
        # Missed: the job is run by the scheduler (it has scheduled runs), a fire time passed
        # more than the grace ago, and no run of it started since.
        entry = schedule.get(job)
        if entry is None or row["last_scheduled_at"] is None:
            continue
        fire_time = missed_fire_time(entry, row["last_started_at"], now, grace=grace)
        if fire_time is None:
            continue
        conditions.append(Condition(
            subject=job, severity="warning",
            summary=f"{job} was due at {fire_time:%Y-%m-%d %H:%M} UTC and has not run (is `schedule` running?)",
            started_at=fire_time + grace,
            details={"job": job, "missed_fire_time": fire_time, "last_started_at": row["last_started_at"]}))
    return conditions


@rule("endpoint_disabled", page="health", params=lambda s, now: {})
def endpoint_disabled(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """Stripe disabled the app's webhook endpoint (it does after days of failed deliveries and
    tells only the account owner, by e-mail): nothing is delivered until someone enables it.
    Critical, one alert per endpoint; it resolves when a sweep sees the endpoint enabled."""
    return [Condition(
        subject=row["stripe_endpoint_id"], severity="critical",
        summary=f"Stripe has disabled the webhook endpoint {row['url']}: no event is delivered until it is "
                "enabled again in Stripe's dashboard (Developers > Webhooks)",
        started_at=_at_most(row["disabled_since"], now),
        details={"endpoint": row["stripe_endpoint_id"], "url": row["url"], "disabled_since": row["disabled_since"],
                 "checked_at": row["seen_at"]}) for row in rows]


@rule("endpoint_misconfigured", page="health", params=lambda s, now: {})
def endpoint_misconfigured(rows: list[dict], *, now: datetime, settings: Settings) -> list[Condition]:
    """The app's endpoint does not subscribe to an event type the app needs
    (MONITOR_SWEEP_EVENT_TYPES), or renders events in another API version than the handler
    expects (the pinned one): a warning per endpoint."""
    conditions = []
    for row in rows:
        problems = []
        if row["missing_events"]:
            problems.append("does not receive " + ", ".join(row["missing_events"]))
        if row["api_version_mismatch"]:
            problems.append(f"sends events in API version {row['api_version']}, not {row['expected_api_version']}")
        conditions.append(Condition(
            subject=row["stripe_endpoint_id"], severity="warning",
            summary=f"The webhook endpoint {row['url']} " + " and ".join(problems),
            started_at=_at_most(row["first_seen_at"], now),
            details={"endpoint": row["stripe_endpoint_id"], "url": row["url"],
                     "missing_events": list(row["missing_events"] or []), "api_version": row["api_version"],
                     "expected_api_version": row["expected_api_version"], "checked_at": row["seen_at"]}))
    return conditions
