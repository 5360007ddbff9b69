"""The weekly health report's numbers: a period and the one before it, read through the
dashboard's own named queries (``queries/*.sql``), so the mail and the pages agree.

``collect(conn, start=..., end=..., stuck_minutes=...)`` returns a ``ReportData`` of plain
values (JSON-ready); ``needs_attention(data)`` derives the short list at the top of the mail.
Both are free of rendering and sending, and take every time as an argument.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from core.formatting import format_duration
from queries import QUERIES

# The target the report holds reconciliation to: 90 % or more of discrepancies resolved automatically.
AUTO_FIX_TARGET = 0.90
TOP_ERROR_GROUPS = 5
# Jobs the default schedule runs at least daily: a week without a success is worth a line.
DAILY_JOBS = ("reconcile", "cleanup", "health-snapshot")
# A p95 this many times the week before's (and above the floor) is called out.
P95_RISE_FACTOR = 1.5
P95_FLOOR_MS = 500
# A success rate this much lower than the week before's is called out.
SUCCESS_DROP = 0.02
# The target the report holds alerting to: failures detected in under a minute.
DETECT_TARGET_S = 60


def _plain(value: Any) -> Any:
    """Query values as JSON-ready Python: Decimal -> float, NaN -> None."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def plain(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a dashboard query (``QUERIES.all``: the statement the page runs) as plain values."""
    return [{key: _plain(value) for key, value in item.items()} for item in found]


def first(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The one row of a totals query as plain values ({} when it returned none)."""
    return plain(found)[0] if found else {}


@dataclass
class PeriodNumbers:
    """Everything measured over one period [start, end)."""

    start: datetime
    end: datetime
    events: dict[str, Any]
    failures_by_category: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    reconciliation: dict[str, Any]
    cleanup: dict[str, Any]
    database: dict[str, Any]
    missed: dict[str, Any]
    alerts: dict[str, Any]
    outcomes: dict[str, int]

    @property
    def auto_fixed_share(self) -> float | None:
        found = self.reconciliation.get("discrepancies") or 0
        return None if not found else (self.reconciliation.get("auto_fixed") or 0) / found


@dataclass
class ReportData:
    """The report: this period, the one before, and what only makes sense for this one."""

    current: PeriodNumbers
    previous: PeriodNumbers
    days: list[dict[str, Any]]
    error_groups: list[dict[str, Any]]
    reconciliation_kinds: list[dict[str, Any]]
    review_queue: dict[str, Any]
    review_amounts: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    alert_rules: list[dict[str, Any]]
    missed_open: dict[str, Any]
    missed_money: list[dict[str, Any]]
    stuck_minutes: int
    attention: list[dict[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No webhook event arrived in the period."""
        return not self.current.events.get("events_received")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["current"]["auto_fixed_share"] = self.current.auto_fixed_share
        data["previous"]["auto_fixed_share"] = self.previous.auto_fixed_share
        data["empty"] = self.empty
        return data


def _database(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Size at the period's first and last daily snapshot and the growth between them."""
    sizes = plain(QUERIES.all(conn, "database_size_history", start=start, end=end, bucket="day"))
    if not sizes:
        return {"snapshots": 0, "first_bytes": None, "last_bytes": None, "growth_bytes": None,
                "last_taken_at": None}
    first, last = sizes[0], sizes[-1]
    return {"snapshots": len(sizes), "first_bytes": first["database_size_bytes"],
            "last_bytes": last["database_size_bytes"], "last_taken_at": last["taken_at"],
            "growth_bytes": last["database_size_bytes"] - first["database_size_bytes"]}


def period_numbers(conn: Connection, *, start: datetime, end: datetime, stuck_minutes: int) -> PeriodNumbers:
    """One period's totals, each from a named query."""
    return PeriodNumbers(
        start=start,
        end=end,
        events=first(QUERIES.all(conn, "event_kpis", start=start, end=end,
                   stuck_before=end - timedelta(minutes=stuck_minutes))),
        failures_by_category=plain(QUERIES.all(conn, "failed_events_by_category", start=start, end=end)),
        payments=plain(QUERIES.all(conn, "completed_payments_by_currency", start=start, end=end)),
        reconciliation=first(QUERIES.all(conn, "reconciliation_period_summary", start=start, end=end)),
        cleanup=first(QUERIES.all(conn, "cleanup_period_summary", start=start, end=end)),
        database=_database(conn, start, end),
        missed=first(QUERIES.all(conn, "missed_events_period_summary", start=start, end=end)),
        alerts=first(QUERIES.all(conn, "alert_detection_summary", start=start, end=end)),
        outcomes=_outcomes(QUERIES.all(conn, "failure_outcomes", start=start, end=end)),
    )


def _outcomes(per_type: list[dict[str, Any]]) -> dict[str, int]:
    """The Errors page's failure outcomes per event type, summed: events that failed at least
    once and are still failed, recovered by a later attempt, or being retried."""
    return {key: sum(int(row[key] or 0) for row in per_type) for key in ("still_failing", "recovered", "retrying")}


def collect(conn: Connection, *, start: datetime, end: datetime, stuck_minutes: int = 15) -> ReportData:
    """The report's numbers for [start, end) and the period of the same length before it."""
    length = end - start
    data = ReportData(
        current=period_numbers(conn, start=start, end=end, stuck_minutes=stuck_minutes),
        previous=period_numbers(conn, start=start - length, end=start, stuck_minutes=stuck_minutes),
        days=plain(QUERIES.all(conn, "events_by_bucket", start=start, end=end, bucket="day")),
        error_groups=plain(QUERIES.all(conn, "error_fingerprints", start=start, end=end, limit=TOP_ERROR_GROUPS)),
        reconciliation_kinds=plain(QUERIES.all(conn, "reconciliation_kinds_in_period", start=start, end=end)),
        review_queue=first(QUERIES.all(conn, "review_queue_at", start=start, end=end)),
        review_amounts=plain(QUERIES.all(conn, "review_amounts_at", end=end)),
        # The run building this report shows as 'running': not news to its reader.
        jobs=[job for job in plain(QUERIES.all(conn, "job_summary", since=start))
              if not (job["job"] == "health-report" and job["last_status"] == "running")],
        alert_rules=plain(QUERIES.all(conn, "alerts_by_rule_in_period", start=start, end=end)),
        # Missed events matter until recovered, whatever the period: these are as of now.
        missed_open=first(QUERIES.all(conn, "missed_events_open")),
        missed_money=plain(QUERIES.all(conn, "missed_money_at_risk")),
        stuck_minutes=stuck_minutes,
    )
    data.attention = needs_attention(data)
    return data


def _attention(level: str, text: str, page: str) -> dict[str, str]:
    return {"level": level, "text": text, "page": page}


def needs_attention(data: ReportData) -> list[dict[str, str]]:
    """The short list at the top of the report, most serious first.

    Each entry: level ('critical', 'warning' or 'info'), one sentence, and the dashboard page
    that shows more ('errors', 'reconciliation', 'health', ...).
    """
    found: list[dict[str, str]] = []
    now, before = data.current, data.previous
    events, events_before = now.events, before.events
    received = events.get("events_received") or 0
    if not received:
        if events_before.get("events_received"):
            found.append(_attention("critical", "No webhook event arrived in this period, though "
                                    f"{events_before['events_received']:,} did in the one before: check that "
                                    "Stripe still reaches the endpoint.", "overview"))
        else:
            found.append(_attention("info", "No webhook event was recorded in this period or the one before.",
                                    "overview"))
    failed = events.get("failed") or 0
    if failed:
        categories = ", ".join(f"{c['category']} {c['failed']:,}" for c in now.failures_by_category)
        unplanned = sum(c.get("needs_person") or 0 for c in now.failures_by_category)
        found.append(_attention("critical" if _payment_failures(data) else "warning",
                                f"{failed:,} event{'s' if failed != 1 else ''} of this period "
                                + ("is" if failed == 1 else "are") + f" still failed ({categories}); "
                                + (f"{unplanned:,} with no automatic retry planned." if unplanned
                                   else "every one has an automatic retry planned."), "errors"))
    missing = data.missed_open.get("open_events") or 0
    if missing:
        found.append(_attention("critical", f"{missing:,} event{'s' if missing != 1 else ''} Stripe sent never "
                                "reached the app and " + ("is" if missing == 1 else "are") + " not recovered yet "
                                "(replay them with python -m jobs sweep --replay).", "events"))
    firing = sum(rule.get("still_firing") or 0 for rule in data.alert_rules)
    if firing:
        found.append(_attention("warning", f"{firing:,} alert{'s' if firing != 1 else ''} of this period "
                                + ("is" if firing == 1 else "are") + " still firing.", "alerts"))
    detect = now.alerts.get("median_s")
    if detect is not None and detect > DETECT_TARGET_S:
        found.append(_attention("warning", f"Alerts took {format_duration(detect)} to detect (median), above "
                                f"the {DETECT_TARGET_S} s target.", "alerts"))
    if now.missed.get("failed_sweeps"):
        found.append(_attention("warning", f"{now.missed['failed_sweeps']:,} sweep(s) for missed events failed.",
                                "events"))
    stuck = events.get("stuck") or 0
    if stuck:
        found.append(_attention("warning", f"{stuck:,} event{'s have' if stuck != 1 else ' has'} been 'processing' "
                                f"for more than {data.stuck_minutes} minutes.", "events"))
    rate, rate_before = events.get("success_rate"), events_before.get("success_rate")
    if rate is not None and rate_before is not None and rate_before - rate >= SUCCESS_DROP:
        found.append(_attention("warning", f"The success rate fell from {rate_before:.1%} to {rate:.1%}.",
                                "overview"))
    p95, p95_before = events.get("p95_duration_ms"), events_before.get("p95_duration_ms")
    if p95 is not None and p95_before and p95 >= P95_FLOOR_MS and p95 >= P95_RISE_FACTOR * p95_before:
        found.append(_attention("warning", f"Processing got slower: p95 {p95:,.0f} ms against "
                                f"{p95_before:,.0f} ms the period before.", "overview"))
    queue = data.review_queue
    if queue.get("open_items"):
        critical = queue.get("open_critical") or 0
        found.append(_attention("critical" if critical else "warning",
                                f"{queue['open_items']:,} reconciliation item{'s' if queue['open_items'] != 1 else ''} "
                                f"wait for a person" + (f" ({critical:,} critical)" if critical else "") + ".",
                                "reconciliation"))
    share = now.auto_fixed_share
    if share is not None and share < AUTO_FIX_TARGET:
        found.append(_attention("warning", f"Reconciliation fixed {share:.0%} of the discrepancies itself, "
                                f"below the {AUTO_FIX_TARGET:.0%} target.", "reconciliation"))
    if now.reconciliation.get("failed_runs"):
        found.append(_attention("warning", f"{now.reconciliation['failed_runs']:,} reconciliation run(s) failed.",
                                "reconciliation"))
    jobs = {job["job"]: job for job in data.jobs}
    for job in data.jobs:
        if job.get("last_status") == "failed":
            found.append(_attention("warning", f"The last {job['job']} run failed: {job.get('last_error') or 'no error recorded'}",
                                    "health"))
    for name in DAILY_JOBS:
        job = jobs.get(name)
        last = job.get("last_success_at") if job else None
        if last is None or last < now.start:
            when = "has never succeeded" if last is None else f"has not succeeded since {last:%Y-%m-%d %H:%M} UTC"
            found.append(_attention("warning", f"{name} {when}; it is meant to run at least daily.", "health"))
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda item: order[item["level"]])


def _payment_failures(data: ReportData) -> bool:
    """Whether any error group still failing touches a checkout.session event (money at risk)."""
    return any(group.get("still_failing") and "checkout.session." in (group.get("event_types") or "")
               for group in data.error_groups)


def period_for(*, days: int, end: date | None, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the report: ``days`` days before ``end`` (00:00 UTC that day), or before now."""
    stop = now if end is None else datetime.combine(end, time(0), tzinfo=timezone.utc)
    return stop - timedelta(days=days), stop
