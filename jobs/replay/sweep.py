"""``python -m jobs sweep``: ask Stripe which events it sent, record those the app never did.

Stripe keeps every event for 30 days and lists them (``GET /v1/events``). A sweep reads the
events of the lookback window of the types the app's endpoint receives
(``MONITOR_SWEEP_EVENT_TYPES``), 100 per page with Stripe's cursors, at most 20 exact types
per request (a ``group.*`` entry is one more list, with ``type``), in two passes: the events
Stripe reports as not delivered to every endpoint (``delivery_success=false``), then all of
them. Each page is compared with ``webhook_events`` and its archive in one anti-join, so
only the few missing events are held in memory. Every missing one is recorded in
``missed_events`` with what is known (type, Stripe time, the object it concerns and its
amount, the two deadlines): also those Stripe counts as delivered, which the endpoint
answered 2xx without recording.

``--replay`` delivers the open missed events (largest amount first) through the same path as
``retry`` (``jobs.replay.redeliver``: signed as Stripe signs, to ``MONITOR_REPLAY_URL``); a missed
event becomes ``recovered`` once its row is ``completed``. The sweep never writes to Stripe;
it is paced and backs off on 429 (``jobs.stripe_gateway``), is idempotent (a second run
finds nothing new), runs under the job lock, is recorded in ``sweep_runs`` and ``job_runs``,
and exits 3 while missed events stay unrecovered.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Protocol

from sqlalchemy.engine import Engine

from core.errors import EXIT_NEEDS_PERSON, EXIT_OK, ConfigError, JobFailed
from core.settings import sweep_event_types
from core.sql import load_package
from jobs.replay import stripe_endpoints
from jobs.runtime import error_line, recorded_run, run_error, while_database_unreachable
from jobs.stripe_gateway import StripePermissionMissing

HELP = ("ask Stripe's Events API which events exist and record those with no row in "
        "webhook_events (exit 3 while any stays unrecovered); --replay re-delivers them")
SQL = load_package("jobs.replay", "sweep.sql")
log = logging.getLogger(__name__)
JOB = "sweep"

DEFAULT_LOOKBACK_HOURS = 72
MAX_LOOKBACK_HOURS = 720  # Stripe's Events API keeps 30 days
SCHEDULED_LOOKBACK_HOURS = 2  # the frequent scheduled pass; the daily one looks back 72 h
MAX_TYPES_PER_REQUEST = 20  # Stripe's limit for types[]
COMPARE_BATCH = 1000  # events compared with webhook_events per statement
REPLAY_LIMIT = 500  # replays per run at most (the next run continues)
REPORT_LIMIT = 50  # missing events listed in the report itself
# Stripe delivers a new event within seconds; one younger than this may still be on its way,
# so the window ends this long before ``now`` (a sweep never reports an event in flight).
IN_FLIGHT_GRACE = timedelta(minutes=2)
STRIPE_RETRY_WINDOW = timedelta(days=3)
STRIPE_RETENTION = timedelta(days=30)


class EventSource(Protocol):
    """What the sweep needs from Stripe (``jobs.stripe_gateway.StripeGateway``)."""

    requests_made: int
    pages_read: int

    def iter_events(self, created_gte: int, created_lt: int, *, types: list[str] | None = None,
                    type: str | None = None,
                    delivery_success: bool | None = None) -> Iterator[dict[str, Any]]: ...


class Redeliver(Protocol):
    """What ``--replay`` needs (``jobs.replay.redeliver.Redeliverer``)."""

    def deliver(self, body: bytes) -> Any: ...


@dataclass
class SweepReport:
    run_id: int | None
    status: str
    dry_run: bool
    replay: bool
    lookback_hours: int
    window_start: datetime
    window_end: datetime
    stripe_events_found: int = 0
    undelivered_found: int = 0
    missing_found: int = 0
    delivered_unrecorded: int = 0
    missing_new: int = 0
    replayed: int = 0
    replay_failed: int = 0
    recovered: int = 0
    still_missing: int = 0
    stripe_requests: int = 0
    stripe_pages: int = 0
    rate_limited: int = 0
    # Time spent in the anti-joins against webhook_events and its archive (monotonic).
    compare_ms: float = 0.0
    missing: list[dict[str, Any]] = field(default_factory=list)
    # Stripe's view of the webhook endpoints (jobs.replay.stripe_endpoints), read first.
    endpoints: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_filters(types: Iterable[str]) -> list[dict[str, Any]]:
    """The fewest list requests covering ``types``, each event listed once: exact types in
    groups of 20 (``types[]``), each ``group.*`` on its own (``type``; Stripe takes no
    wildcard in types), exact types a group covers left out."""
    groups = [t for t in types if t.endswith("*")]
    # An exact type a group already covers would list its events twice.
    exact = [t for t in types if not t.endswith("*") and not any(t.startswith(g[:-1]) for g in groups)]
    filters: list[dict[str, Any]] = [{"types": exact[n:n + MAX_TYPES_PER_REQUEST]}
                                     for n in range(0, len(exact), MAX_TYPES_PER_REQUEST)]
    filters += [{"type": group} for group in groups]
    return filters


def summary(evt: dict[str, Any], undelivered: bool) -> dict[str, Any]:
    """What a missed event row keeps of a Stripe event."""
    obj = (evt.get("data") or {}).get("object") or {}
    amount = obj.get("amount_total") if obj.get("object") == "checkout.session" else obj.get("amount")
    return {
        "stripe_event_id": evt["id"],
        "event_type": evt["type"],
        "created": int(evt["created"]),
        "livemode": bool(evt.get("livemode")),
        "pending_webhooks": evt.get("pending_webhooks"),
        "delivered": not undelivered,
        "object_id": obj.get("id"),
        "object_type": obj.get("object"),
        "amount": amount if isinstance(amount, int) else None,
        "currency": obj.get("currency"),
        "payload": evt,
    }


def run(engine: Engine, *, now: datetime, gateway: EventSource,
        event_types: Iterable[str], lookback_hours: int = DEFAULT_LOOKBACK_HOURS,
        dry_run: bool = False, redeliver: Redeliver | None = None, trigger: str = "cli",
        progress: Callable[[str], None] | None = None, endpoint_url: str | None = None) -> SweepReport:
    """Sweep the ``lookback_hours`` before ``now``; see the module docstring.

    First it records Stripe's view of the webhook endpoints (``jobs.replay.stripe_endpoints``;
    ``endpoint_url`` is the app's, None: every endpoint), when the gateway can list them. A
    key without that permission or a failing list is reported and does not stop the sweep.

    ``redeliver`` set (and not ``dry_run``) replays the open missed events through it.
    Raises ConfigError for a lookback outside 1..720 hours; Stripe failures (after the
    gateway's retries) raise and leave the run ``failed``.
    """
    if not 1 <= int(lookback_hours) <= MAX_LOOKBACK_HOURS:
        raise ConfigError(f"--lookback-hours must be between 1 and {MAX_LOOKBACK_HOURS} "
                          f"(Stripe keeps events for 30 days), not {lookback_hours}")
    filters = request_filters(list(event_types))
    if not filters:
        raise ConfigError("no event type to sweep; set MONITOR_SWEEP_EVENT_TYPES")
    say = progress or (lambda _message: None)
    window_end = now - IN_FLIGHT_GRACE
    window_start = now - timedelta(hours=int(lookback_hours))
    report = SweepReport(None, "running", dry_run, redeliver is not None and not dry_run,
                         int(lookback_hours), window_start, window_end)

    with recorded_run(engine, JOB, now=now, trigger=trigger) as job:
        started = time.monotonic()
        with engine.begin() as conn:
            report.run_id = SQL.execute(
                conn, "start_run", trigger=trigger, dry_run=dry_run, replay=report.replay,
                lookback_hours=int(lookback_hours), window_start=window_start,
                window_end=window_end, started_at=now, job_run_id=job.id).scalar_one()
        try:
            _check_endpoints(engine, report, gateway, list(event_types), now=now, endpoint_url=endpoint_url, say=say)
            _sweep(engine, report, gateway, filters, now=now, say=say, job=job)
            if report.replay:
                _replay(engine, report, redeliver, now=now, say=say)
            if not dry_run:
                report.still_missing = int(SQL.scalar(engine, "still_missing") or 0)
            else:
                report.still_missing = report.missing_found
            job.check_session()  # a run whose session (and lock) died on the way is no success
            report.status = "needs_review" if report.still_missing else "completed"
        except BaseException as exc:
            report.status = "failed"
            try:  # retried while the database restarts; the job's own error matters more
                while_database_unreachable(_finish)(engine, report, gateway, started,
                                                    error=run_error(exc))
            except Exception as record_exc:
                log.error("sweep run %s failed and could not be recorded as failed: %s",
                          report.run_id, error_line(record_exc))
            raise
        _finish(engine, report, gateway, started)
        job.status = report.status
        job.summary = {k: v for k, v in report.as_dict().items() if k != "missing"}
    return report


def _check_endpoints(engine: Engine, report: SweepReport, gateway, needed: list[str], *, now: datetime,
                     endpoint_url: str | None, say) -> None:
    if not hasattr(gateway, "iter_webhook_endpoints"):
        return
    try:
        checked = stripe_endpoints.check(engine, gateway, now=now, needed=needed, endpoint_url=endpoint_url)
    except JobFailed as exc:  # a restricted key without the permission, Stripe unwell: sweep on
        if isinstance(exc, ConfigError) and not isinstance(exc, StripePermissionMissing):
            raise  # the key itself is refused: the sweep cannot run either
        checked = stripe_endpoints.EndpointCheck(
            error=f"{error_line(exc)} (the endpoint check needs '{stripe_endpoints.PERMISSION}')")
        log.warning("sweep: could not read the webhook endpoints: %s", checked.error)
    report.endpoints = checked.as_dict()
    if checked.disabled:
        say(f"Stripe has DISABLED the app's webhook endpoint: {', '.join(checked.disabled)}")


def _sweep(engine: Engine, report: SweepReport, gateway: EventSource,
           filters: list[dict[str, Any]], *, now: datetime, say, job=None) -> None:
    gte, lt = int(report.window_start.timestamp()), int(report.window_end.timestamp())
    # Pass 1: what Stripe itself reports as not (yet) delivered to every endpoint.
    undelivered: set[str] = set()
    for params in filters:
        for evt in gateway.iter_events(gte, lt, delivery_success=False, **params):
            undelivered.add(evt["id"])
    report.undelivered_found = len(undelivered)
    say(f"Stripe reports {len(undelivered):,} undelivered event(s) in the window")

    # Pass 2: every event of the window, compared page by page.
    batch: list[dict[str, Any]] = []
    last_said = time.monotonic()
    for params in filters:
        for evt in gateway.iter_events(gte, lt, **params):
            report.stripe_events_found += 1
            batch.append(evt)
            if len(batch) >= COMPARE_BATCH:
                _compare(engine, report, batch, undelivered, now=now)
                batch = []
                if job is not None:  # for whoever follows the run (the dashboard)
                    job.report_progress(events_read=report.stripe_events_found,
                                        pages=gateway.pages_read, missing=report.missing_found)
            if time.monotonic() - last_said >= 2:
                last_said = time.monotonic()
                say(f"  {report.stripe_events_found:,} events read ({gateway.pages_read:,} pages), "
                    f"{report.missing_found:,} missing so far")
    if batch:
        _compare(engine, report, batch, undelivered, now=now)
    if not report.dry_run:
        with engine.begin() as conn:
            changed = [row[0] for row in SQL.execute(conn, "refresh_statuses", now=now)]
        report.recovered += changed.count("recovered")


def _compare(engine: Engine, report: SweepReport, batch: list[dict[str, Any]],
             undelivered: set[str], *, now: datetime) -> None:
    """Record the events of ``batch`` that have no row locally (one statement to find them,
    one to record them, in one transaction)."""
    by_id = {evt["id"]: evt for evt in batch}
    with engine.begin() as conn:
        started = time.monotonic()
        missing_ids = [row[0] for row in SQL.execute(conn, "unrecorded_among", ids=list(by_id))]
        report.compare_ms += (time.monotonic() - started) * 1000
        if not missing_ids:
            return
        missing = [summary(by_id[i], undelivered=i in undelivered or bool(by_id[i].get("pending_webhooks")))
                   for i in missing_ids]
        report.missing_found += len(missing)
        report.delivered_unrecorded += sum(1 for m in missing if m["delivered"])
        room = REPORT_LIMIT - len(report.missing)
        report.missing += [{k: v for k, v in m.items() if k != "payload"} for m in missing[:max(room, 0)]]
        if report.dry_run:
            return
        rows = SQL.execute(conn, "record_missing", run_id=report.run_id, now=now,
                           events=json.dumps(missing)).all()
        report.missing_new += sum(1 for row in rows if row.is_new)


def _replay(engine: Engine, report: SweepReport, redeliver: Redeliver, *, now: datetime,
            say) -> None:
    """Deliver the open missed events, money at risk first; recovered once completed."""
    todo = SQL.all(engine, "open_to_replay", limit=REPLAY_LIMIT)
    if todo:
        say(f"replaying {len(todo):,} missed event(s)")
    for row in todo:
        body = json.dumps(row["payload"], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        result = redeliver.deliver(body)
        delivered = bool(getattr(result, "accepted", False))
        error = None if getattr(result, "completed", False) else result.describe()
        with engine.begin() as conn:
            SQL.execute(conn, "mark_replayed", id=row["id"], now=now, delivered=delivered, error=error)
        if delivered:
            report.replayed += 1
        else:
            report.replay_failed += 1
    with engine.begin() as conn:
        changed = [r[0] for r in SQL.execute(conn, "refresh_statuses", now=now)]
    report.recovered += changed.count("recovered")


def _finish(engine: Engine, report: SweepReport, gateway: EventSource, started: float, *,
            error: str | None = None) -> None:
    duration_ms = int((time.monotonic() - started) * 1000)
    report.stripe_requests = int(getattr(gateway, "requests_made", 0))
    report.stripe_pages = int(getattr(gateway, "pages_read", 0))
    transport = getattr(gateway, "transport", None)
    report.rate_limited = int(getattr(transport, "rate_limited", 0))
    details = {"rate_limited": report.rate_limited, "replay_failed": report.replay_failed,
               "compare_ms": round(report.compare_ms, 1), "missing": report.missing}
    with engine.begin() as conn:
        SQL.execute(conn, "finish_run", id=report.run_id, status=report.status,
                    # The run started at ``now``; the duration is monotonic.
                    finished_at=report.window_end + IN_FLIGHT_GRACE + timedelta(milliseconds=duration_ms),
                    duration_ms=duration_ms, stripe_events_found=report.stripe_events_found,
                    undelivered_found=report.undelivered_found, missing_found=report.missing_found,
                    delivered_unrecorded=report.delivered_unrecorded, missing_new=report.missing_new,
                    replayed=report.replayed, recovered=report.recovered,
                    still_missing=report.still_missing, stripe_requests=report.stripe_requests,
                    stripe_pages=report.stripe_pages,
                    details=json.dumps(details, default=str), error=error)


# --- command line ---------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lookback-hours", type=int, default=DEFAULT_LOOKBACK_HOURS, metavar="N",
                        help=f"sweep the events Stripe created in the last N hours (1..{MAX_LOOKBACK_HOURS}, "
                        f"default %(default)s: Stripe's 3 days of retries)")
    parser.add_argument("--replay", action="store_true",
                        help="re-deliver the missed events to MONITOR_REPLAY_URL as Stripe would")
    parser.add_argument("--dry-run", action="store_true",
                        help="list and compare, record nothing (the run itself is recorded)")


def main(args: argparse.Namespace, ctx) -> int:
    from jobs.stripe_gateway import gateway_from_settings

    if not 1 <= args.lookback_hours <= MAX_LOOKBACK_HOURS:
        raise ConfigError(f"--lookback-hours must be between 1 and {MAX_LOOKBACK_HOURS} "
                          f"(Stripe keeps events for 30 days), not {args.lookback_hours}")
    settings = ctx.settings
    types = sweep_event_types(settings.MONITOR_SWEEP_EVENT_TYPES)
    gateway = gateway_from_settings(settings)
    redeliver = None
    if args.replay and not args.dry_run:
        from jobs.replay.redeliver import Redeliverer

        redeliver = Redeliverer.from_settings(settings, source="sweep")
    engine = ctx.jobs_engine()
    progress = ctx.say if sys.stderr.isatty() or sys.stdout.isatty() else None
    try:
        report = run(engine, now=ctx.now(), gateway=gateway, event_types=types,
                     lookback_hours=args.lookback_hours, dry_run=args.dry_run,
                     redeliver=redeliver, trigger=ctx.trigger, progress=progress,
                     endpoint_url=settings.MONITOR_STRIPE_ENDPOINT_URL)
    finally:
        if redeliver is not None:
            redeliver.close()
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        _print(report, ctx)
    disabled = bool(report.endpoints and report.endpoints["disabled"])
    return EXIT_NEEDS_PERSON if report.still_missing or disabled else EXIT_OK


def _print_endpoints(report: SweepReport, ctx) -> None:
    checked = report.endpoints
    if not checked:
        return
    if checked["error"]:
        ctx.warn(f"webhook endpoints not checked: {checked['error']}")
        return
    ctx.say(f"webhook endpoints at Stripe: {checked['seen']} ({checked['watched']} the app's)"
            + "".join(f"; DISABLED: {url}" for url in checked["disabled"])
            + "".join(f"; misconfigured: {url}" for url in checked["misconfigured"]))


def _print(report: SweepReport, ctx) -> None:
    _print_endpoints(report, ctx)
    prefix = "dry run: " if report.dry_run else ""
    ctx.say(f"{prefix}swept {report.lookback_hours} h ({report.window_start:%Y-%m-%d %H:%M} to "
            f"{report.window_end:%Y-%m-%d %H:%M} UTC): {report.stripe_events_found:,} events at "
            f"Stripe ({report.undelivered_found:,} undelivered), {report.stripe_pages:,} pages in "
            f"{report.stripe_requests:,} requests")
    ctx.say(f"{prefix}missing locally: {report.missing_found:,} ({report.delivered_unrecorded:,} "
            f"Stripe counts as delivered, {report.missing_new:,} new)")
    for item in report.missing[:10]:
        amount = f" {item['amount']} {item['currency'] or ''}".rstrip() if item["amount"] is not None else ""
        ctx.say(f"  {item['stripe_event_id']} {item['event_type']} "
                f"{datetime.fromtimestamp(item['created'], timezone.utc):%Y-%m-%d %H:%M}{amount}")
    if report.replay:
        ctx.say(f"replayed {report.replayed:,} ({report.replay_failed:,} failed); "
                f"recovered {report.recovered:,}")
    if report.still_missing:
        ctx.say(f"{report.still_missing:,} missed event(s) still unrecovered"
                + ("" if report.replay else "; replay them with: python -m jobs sweep --replay"))
