"""The weekly health report's numbers: a period and the one before it, read through the
dashboard's own named queries (``queries/*.sql``), so the mail and the pages agree.

``collect(conn, start=..., end=..., stuck_minutes=...)`` returns a ``ReportData`` of plain
values (JSON-ready); ``needs_attention(data)`` derives the short list at the top of the mail.
Both are free of rendering and sending, and take every time as an argument.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from queries import QUERIES

# The seed's success metric: 90 % or more of discrepancies resolved automatically.
AUTO_FIX_TARGET = 0.90
TOP_ERROR_GROUPS = 5
# Jobs the default schedule runs at least daily: a week without a success is worth a line.
DAILY_JOBS = ("reconcile", "cleanup", "health-snapshot")
# A p95 this many times the week before's (and above the floor) is called out.
P95_RISE_FACTOR = 1.5
P95_FLOOR_MS = 500
# A success rate this much lower than the week before's is called out.
SUCCESS_DROP = 0.02


def _plain(value: Any) -> Any:
    """Query values as JSON-ready Python: Decimal -> float, NaN -> None."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def rows(conn: Connection, name: str, **params: Any) -> list[dict[str, Any]]:
    """A dashboard query's rows as plain dicts (the same statement the page runs)."""
    result = conn.execute(QUERIES[name].statement, params).mappings()
    return [{key: _plain(value) for key, value in row.items()} for row in result]


def row(conn: Connection, name: str, **params: Any) -> dict[str, Any]:
    found = rows(conn, name, **params)
    return found[0] if found else {}


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
    sizes = rows(conn, "database_size_history", start=start, end=end, bucket="day")
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
        events=row(conn, "event_kpis", start=start, end=end,
                   stuck_before=end - timedelta(minutes=stuck_minutes)),
        failures_by_category=rows(conn, "failed_events_by_category", start=start, end=end),
        payments=rows(conn, "completed_payments_by_currency", start=start, end=end),
        reconciliation=row(conn, "reconciliation_period_summary", start=start, end=end),
        cleanup=row(conn, "cleanup_period_summary", start=start, end=end),
        database=_database(conn, start, end),
    )


def collect(conn: Connection, *, start: datetime, end: datetime, stuck_minutes: int = 15) -> ReportData:
    """The report's numbers for [start, end) and the period of the same length before it."""
    length = end - start
    data = ReportData(
        current=period_numbers(conn, start=start, end=end, stuck_minutes=stuck_minutes),
        previous=period_numbers(conn, start=start - length, end=start, stuck_minutes=stuck_minutes),
        days=rows(conn, "events_by_bucket", start=start, end=end, bucket="day"),
        error_groups=rows(conn, "error_fingerprints", start=start, end=end, limit=TOP_ERROR_GROUPS),
        reconciliation_kinds=rows(conn, "reconciliation_kinds_in_period", start=start, end=end),
        review_queue=row(conn, "review_queue_at", start=start, end=end),
        review_amounts=rows(conn, "review_amounts_at", end=end),
        # The run building this report shows as 'running': not news to its reader.
        jobs=[job for job in rows(conn, "job_summary", since=start)
              if not (job["job"] == "health-report" and job["last_status"] == "running")],
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
        found.append(_attention("critical" if _payment_failures(data) else "warning",
                                f"{failed:,} event{'s' if failed != 1 else ''} of this period are still failed "
                                f"({categories}).", "errors"))
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
    from datetime import time, timezone

    stop = now if end is None else datetime.combine(end, time(0), tzinfo=timezone.utc)
    return stop - timedelta(days=days), stop
