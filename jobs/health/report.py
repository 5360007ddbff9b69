"""``python -m jobs health-report``: the weekly health report, mailed.

Builds the numbers of the ``--days`` days before ``--end`` against the period before
(``jobs/health/report_data.py``, over the dashboard's own named queries), renders them with the
Jinja2 templates in ``jobs/health/templates/`` (HTML with inline CSS and table-based bars, which
Gmail, Outlook and Apple Mail all render, plus a plain-text part), records the report in
``health_reports`` and mails it through ``core.mail``. A report whose send fails stays
'failed' and is sent again by the next run that sends (the weekly schedule's, or a manual
one), at most ``MAX_ATTEMPTS`` times and while it is less than ``RETRY_WITHIN`` old.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy.engine import Engine

from core import mail
from core.checkout import format_money
from core.errors import ConfigError, JobFailed
from core.formatting import format_duration, format_percent
from core.sql import load_package
from jobs.cli_support import whole_number
from jobs.health import report_data
from jobs.health.snapshot import human_bytes
from jobs.runtime import recorded_run

HELP = ("build the health report of the last --days days against the period before, record it "
        "and mail it to --to or MONITOR_REPORT_EMAIL_TO")
JOB = "health-report"
SQL = load_package("jobs.health", "report.sql")
DEFAULT_DAYS = 7
MAX_ATTEMPTS = 5
RETRY_WITHIN = timedelta(days=30)
TEMPLATES = Environment(
    loader=PackageLoader("jobs.health", "templates"),
    # Text from outside (error messages, event types) is escaped in the HTML part; the
    # plain-text part is shown as text by every client.
    autoescape=lambda name: bool(name and name.endswith(".html.j2")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
# Dashboard pages the report links to (Streamlit's URL path of each page module).
PAGES = {"overview": "", "events": "events", "errors": "errors", "funnel": "funnel", "alerts": "alerts",
         "reconciliation": "reconciliation", "health": "health"}


# --- presentation: numbers -> what the templates show -----------------------------------

def _link(base: str | None, page: str) -> str | None:
    if not base:
        return None
    path = PAGES.get(page, "")
    return f"{base.rstrip('/')}/{path}" if path else base.rstrip("/") + "/"


def _count(value: Any) -> str:
    return f"{int(value or 0):,}"


def _delta_count(now: Any, before: Any) -> str:
    if now is None or before is None:
        return ""
    return f"{int(now) - int(before):+,}"


def _detect(seconds: Any) -> str:
    """Detection and resolution times: whole seconds up to 10 minutes ('90 s'), then coarser."""
    if seconds is None:
        return "–"
    return f"{float(seconds):,.0f} s" if float(seconds) < 600 else format_duration(seconds)


def _day(moment: datetime) -> str:
    return f"{moment:%a} {moment.day} {moment:%b}"


def period_label(start: datetime, end: datetime) -> str:
    """'16–22 Nov 2026' for [Mon 16 00:00, Mon 23 00:00); times when the period is not whole days."""
    last = end - timedelta(microseconds=1)
    if start.time() != end.time():
        return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"
    if start.time().isoformat() != "00:00:00":
        return f"{start:%d %b %H:%M} – {end:%d %b %Y %H:%M} UTC"
    if (start.year, start.month) == (last.year, last.month):
        return f"{start.day}–{last.day} {last:%b %Y}"
    if start.year == last.year:
        return f"{start.day} {start:%b} – {last.day} {last:%b %Y}"
    return f"{start.day} {start:%b %Y} – {last.day} {last:%b %Y}"


def _bar(value: Any, largest: Any) -> int:
    """Width in percent of a table-based bar (at least 1 when there is anything)."""
    value, largest = float(value or 0), float(largest or 0)
    if value <= 0 or largest <= 0:
        return 0
    return max(1, round(100 * value / largest))


def present(data: report_data.ReportData, *, dashboard_url: str | None, generated_at: datetime) -> dict[str, Any]:
    """The template context: every value already formatted, every bar already measured."""
    now, before = data.current, data.previous
    ev, ev_before = now.events, before.events
    p95, p95_before = ev.get("p95_duration_ms"), ev_before.get("p95_duration_ms")
    rate, rate_before = ev.get("success_rate"), ev_before.get("success_rate")
    kpis = [
        {"label": "Events received", "value": _count(ev.get("events_received")),
         "before": _count(ev_before.get("events_received")),
         "delta": _delta_count(ev.get("events_received"), ev_before.get("events_received"))},
        {"label": "Success rate", "value": format_percent(rate), "before": format_percent(rate_before),
         "delta": "" if rate is None or rate_before is None else f"{(rate - rate_before) * 100:+.1f} pp"},
        {"label": "Failed (still)", "value": _count(ev.get("failed")), "before": _count(ev_before.get("failed")),
         "delta": _delta_count(ev.get("failed"), ev_before.get("failed"))},
        {"label": "Recovered after a failed attempt", "value": _count(now.outcomes.get("recovered")),
         "before": _count(before.outcomes.get("recovered")),
         "delta": _delta_count(now.outcomes.get("recovered"), before.outcomes.get("recovered"))},
        {"label": "p95 processing time", "value": format_duration(None if p95 is None else p95 / 1000),
         "before": format_duration(None if p95_before is None else p95_before / 1000),
         "delta": "" if p95 is None or p95_before is None else f"{p95 - p95_before:+,.0f} ms"},
        {"label": f"Stuck (> {data.stuck_minutes} min processing)", "value": _count(ev.get("stuck")),
         "before": _count(ev_before.get("stuck")), "delta": _delta_count(ev.get("stuck"), ev_before.get("stuck"))},
    ]
    busiest = max((d["completed"] + d["failed"] + d["processing"] + d["pending"] for d in data.days), default=0)
    days = [{"label": _day(d["bucket"]), "completed": d["completed"], "failed": d["failed"],
             "other": d["processing"] + d["pending"],
             "completed_width": _bar(d["completed"], busiest), "failed_width": _bar(d["failed"], busiest),
             "other_width": _bar(d["processing"] + d["pending"], busiest)} for d in data.days]
    categories_before = {c["category"]: c["failed"] for c in before.failures_by_category}
    worst = max((c["failed"] for c in now.failures_by_category), default=0)
    categories = [{"category": c["category"], "failed": _count(c["failed"]),
                   "retry_planned": _count(c["retry_planned"]), "needs_person": _count(c["needs_person"]),
                   "before": _count(categories_before.get(c["category"], 0)), "width": _bar(c["failed"], worst)}
                  for c in now.failures_by_category]
    groups = [{"fingerprint": g["fingerprint"], "events": _count(g["events"]),
               "still_failing": _count(g["still_failing"]), "failing": bool(g["still_failing"]),
               "first_seen": f"{g['first_seen']:%Y-%m-%d %H:%M}", "last_seen": f"{g['last_seen']:%Y-%m-%d %H:%M}",
               "event_types": g["event_types"] or ""} for g in data.error_groups]
    payments_before = {p["currency"]: p for p in before.payments}
    payments = [{"currency": (p["currency"] or "?").upper(), "registrations": _count(p["registrations"]),
                 "amount": format_money(p["amount_total"], p["currency"]) or "–",
                 "before": format_money((payments_before.get(p["currency"]) or {}).get("amount_total", 0),
                                        p["currency"]) or "–"} for p in now.payments]
    recon, recon_before = now.reconciliation, before.reconciliation
    share, share_before = now.auto_fixed_share, before.auto_fixed_share
    most = max((k["items"] for k in data.reconciliation_kinds), default=0)
    kinds = [{"kind": k["kind"], "found": _count(k["items"]), "auto_fixed": _count(k["auto_fixed"]),
              "manual_review": _count(k["manual_review"]), "still_open": _count(k["still_open"]),
              "width": _bar(k["items"], most)} for k in data.reconciliation_kinds]
    queue = data.review_queue
    oldest = queue.get("oldest_open_at")
    database, database_before = now.database, before.database
    growth, growth_before = database.get("growth_bytes"), database_before.get("growth_bytes")
    jobs = [{"job": j["job"], "last_status": j["last_status"] or "–",
             "last_success": f"{j['last_success_at']:%Y-%m-%d %H:%M}" if j.get("last_success_at") else "never",
             "runs": _count(j["runs"]), "failures": _count(j["failures"]),
             "failed": j["last_status"] == "failed"} for j in data.jobs]
    missed, missed_before, missed_open = now.missed, before.missed, data.missed_open
    oldest_missing, last_sweep = missed_open.get("oldest_at"), missed_open.get("last_sweep_at")
    alerts, alerts_before = now.alerts, before.alerts
    detect = alerts.get("median_s")
    attention = [dict(item, url=_link(dashboard_url, item["page"])) for item in data.attention]
    label = period_label(now.start, now.end)
    urgent = sum(1 for item in attention if item["level"] != "info")
    subject = (f"Webhook health {label}: " + (f"{urgent} thing{'s' if urgent != 1 else ''} need attention"
                                              if urgent else "all clear"))
    return {
        "subject": subject,
        "period": label,
        "previous_period": period_label(before.start, before.end),
        "period_start": f"{now.start:%Y-%m-%d %H:%M} UTC",
        "period_end": f"{now.end:%Y-%m-%d %H:%M} UTC",
        "generated_at": f"{generated_at:%Y-%m-%d %H:%M} UTC",
        "empty": data.empty,
        "attention": attention,
        "kpis": kpis,
        "days": days,
        "categories": categories,
        "groups": groups,
        "payments": payments,
        "reconciliation": {
            "runs": _count(recon.get("runs")), "runs_before": _count(recon_before.get("runs")),
            "failed_runs": _count(recon.get("failed_runs")),
            "discrepancies": _count(recon.get("discrepancies")),
            "discrepancies_before": _count(recon_before.get("discrepancies")),
            "auto_fixed": _count(recon.get("auto_fixed")), "manual_review": _count(recon.get("manual_review")),
            "share": format_percent(share), "share_before": format_percent(share_before),
            "share_width": 0 if share is None else round(share * 100),
            "target": f"{report_data.AUTO_FIX_TARGET:.0%}", "target_width": round(report_data.AUTO_FIX_TARGET * 100),
            "target_met": None if share is None else share >= report_data.AUTO_FIX_TARGET,
        },
        "kinds": kinds,
        "queue": {"open_items": _count(queue.get("open_items")), "open_critical": _count(queue.get("open_critical")),
                  "oldest": f"{oldest:%Y-%m-%d}" if oldest else None,
                  "resolved": _count(queue.get("resolved_in_period")),
                  "amounts": [{"currency": (a["currency"] or "?").upper(), "count": _count(a["items"]),
                               "amount": format_money(a["amount_total"], a["currency"]) or "–"}
                              for a in data.review_amounts]},
        "cleanup": {"runs": _count(now.cleanup.get("runs")), "failed_runs": _count(now.cleanup.get("failed_runs")),
                    "events_archived": _count(now.cleanup.get("events_archived")),
                    "events_archived_before": _count(before.cleanup.get("events_archived")),
                    "registrations_archived": _count(now.cleanup.get("registrations_archived"))},
        "database": {"size": human_bytes(database.get("last_bytes")),
                     "growth": "–" if growth is None else ("+" if growth >= 0 else "-") + human_bytes(abs(growth)),
                     "growth_before": "–" if growth_before is None else
                     ("+" if growth_before >= 0 else "-") + human_bytes(abs(growth_before)),
                     "snapshots": database.get("snapshots") or 0},
        "jobs": jobs,
        "missed": {
            "sweeps": _count(missed.get("sweeps")), "failed_sweeps": _count(missed.get("failed_sweeps")),
            "found": _count(missed.get("found")), "found_before": _count(missed_before.get("found")),
            "replayed": _count(missed.get("replayed")), "recovered": _count(missed.get("recovered")),
            "still_missing": _count(missed.get("still_missing")),
            "open_now": _count(missed_open.get("open_events")),
            "oldest": f"{oldest_missing:%Y-%m-%d %H:%M}" if oldest_missing else None,
            "last_sweep": f"{last_sweep:%Y-%m-%d %H:%M}" if last_sweep else "never",
            "money": [format_money(m["amount"], m["currency"]) or "–" for m in data.missed_money],
        },
        "alerts": {
            "fired": _count(alerts.get("alerts")), "fired_before": _count(alerts_before.get("alerts")),
            "median_detect": _detect(detect), "p95_detect": _detect(alerts.get("p95_s")),
            "max_detect": _detect(alerts.get("max_s")),
            "median_detect_before": _detect(alerts_before.get("median_s")),
            "target": _detect(report_data.DETECT_TARGET_S),
            "target_met": None if detect is None else detect <= report_data.DETECT_TARGET_S,
            "rules": [{"rule": r["rule"], "fired": _count(r["fired"]), "critical": _count(r["critical"]),
                       "resolved": _count(r["resolved"]), "still_firing": _count(r["still_firing"]),
                       "firing": bool(r["still_firing"]),
                       "median_detect": _detect(r["median_detect_s"]),
                       "median_resolve": _detect(r["median_resolve_s"])} for r in data.alert_rules],
        },
        "links": {page: _link(dashboard_url, page) for page in PAGES},
    }


@dataclass
class Rendered:
    subject: str
    html: str
    text: str
    data: dict[str, Any]


def render(data: report_data.ReportData, *, dashboard_url: str | None, generated_at: datetime) -> Rendered:
    """The report's subject, HTML and plain text from its numbers."""
    context = present(data, dashboard_url=dashboard_url, generated_at=generated_at)
    html = TEMPLATES.get_template("health_report.html.j2").render(**context)
    text = TEMPLATES.get_template("health_report.txt.j2").render(**context)
    return Rendered(context["subject"], html, text, data.as_dict())


def build(engine: Engine, *, start: datetime, end: datetime, now: datetime, stuck_minutes: int = 15,
          dashboard_url: str | None = None) -> Rendered:
    """Collect and render the report of [start, end) without recording or sending it."""
    with engine.connect() as conn:
        data = report_data.collect(conn, start=start, end=end, stuck_minutes=stuck_minutes)
    return render(data, dashboard_url=dashboard_url, generated_at=now)


# --- the job ------------------------------------------------------------------------------

@dataclass
class MailSetup:
    """Where, as whom and to whom to send (``ssl_context``: trust other than the system's)."""

    server: mail.SmtpServer
    sender: str
    recipients: list[str]
    ssl_context: Any = None

    def deliver(self, message) -> mail.SendResult:
        return mail.send(message, self.server, ssl_context=self.ssl_context)


def mail_setup(settings, to: list[str] | None = None) -> MailSetup:
    """The mail settings a sending run needs, or ConfigError saying which one is missing."""
    try:
        recipients = mail.parse_addresses(to) if to else mail.parse_addresses(settings.MONITOR_REPORT_EMAIL_TO)
    except ValueError as exc:
        raise ConfigError(f"--to: {exc}") from None
    if not settings.MONITOR_SMTP_URL:
        raise ConfigError("MONITOR_SMTP_URL is not set (smtp://user:password@host:587); "
                          "use --dry-run or --output to write the report without sending it")
    if not settings.MONITOR_EMAIL_FROM:
        raise ConfigError("MONITOR_EMAIL_FROM is not set (the sender address of the report)")
    if not recipients:
        raise ConfigError("no recipients: set MONITOR_REPORT_EMAIL_TO or pass --to ADDRESS")
    return MailSetup(mail.parse_smtp_url(settings.MONITOR_SMTP_URL), settings.MONITOR_EMAIL_FROM, recipients)


@dataclass
class ReportOutcome:
    """What one run did: the report it built, and each send it attempted."""

    report_id: int
    period_start: datetime
    period_end: datetime
    subject: str
    status: str  # sent, failed, dry_run, not_sent
    recipients: list[str]
    attention: list[dict[str, str]]
    output: str | None = None
    error: str | None = None
    run_id: int | None = None
    retried: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"report_id": self.report_id, "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat(),
                "subject": self.subject, "status": self.status, "recipients": self.recipients,
                "needs_attention": self.attention, "output": self.output, "error": self.error,
                "job_run_id": self.run_id, "retried": self.retried, "data": self.data}


def _send_recorded(engine: Engine, report_id: int, setup: MailSetup, *, now: datetime) -> tuple[str, str | None]:
    """Send one recorded report as it was stored; returns (status, error) as recorded."""
    with engine.begin() as conn:
        row = SQL.execute(conn, "claim_for_sending", report_id=report_id, now=now).mappings().first()
    if row is None:
        return "skipped", "no longer waiting to be sent"
    message = mail.build_message(sender=setup.sender, recipients=list(row["recipients"]), subject=row["subject"],
                                 text=row["text"], html=row["html"], now=now)
    try:
        result = setup.deliver(message)
    except mail.MailError as exc:
        with engine.begin() as conn:
            SQL.execute(conn, "mark_failed", report_id=report_id, error=str(exc)[:2000])
        return "failed", str(exc)
    refused = "; ".join(f"refused {address} ({reason})" for address, reason in result.refused.items()) or None
    with engine.begin() as conn:
        SQL.execute(conn, "mark_sent", report_id=report_id, now=now, error=refused)
    return "sent", refused


def run(engine: Engine, *, now: datetime, days: int = DEFAULT_DAYS, end: date | None = None,
        setup: MailSetup | None = None, recipients: list[str] | None = None, output: Path | str | None = None,
        not_sent_reason: str | None = None, stuck_minutes: int = 15, dashboard_url: str | None = None,
        trigger: str = "cli", say: Callable[[str], None] = lambda _line: None) -> ReportOutcome:
    """Build, record and (with ``setup``) mail the report of the ``days`` days before ``end``.

    Without ``setup`` the report is only recorded (status 'dry_run', or 'not_sent' with
    ``not_sent_reason``) and written to ``output`` when given. With it, the new report is
    sent, then earlier reports whose send failed are sent again. Raises JobFailed (after
    recording everything) when the new report could not be sent.
    """
    start, stop = report_data.period_for(days=days, end=end, now=now)
    with recorded_run(engine, JOB, now=now, trigger=trigger) as job:
        say(f"building the report of {period_label(start, stop)}")
        rendered = build(engine, start=start, end=stop, now=now, stuck_minutes=stuck_minutes,
                         dashboard_url=dashboard_url)
        to = setup.recipients if setup else list(recipients or [])
        status = "sending" if setup else ("not_sent" if not_sent_reason else "dry_run")
        with engine.begin() as conn:
            report_id = SQL.execute(
                conn, "insert_report", period_start=start, period_end=stop, created_at=now, trigger=trigger,
                status=status, subject=rendered.subject, recipients=to, html=rendered.html, text=rendered.text,
                data=json.dumps(rendered.data, default=str), error=not_sent_reason, job_run_id=job.id,
            ).scalar_one()
        outcome = ReportOutcome(report_id, start, stop, rendered.subject, status, to, rendered.data["attention"],
                                run_id=job.id, error=not_sent_reason, data=rendered.data)
        if output is not None:
            outcome.output = _write(output, rendered.html)
            say(f"wrote the HTML to {outcome.output}")
        if setup:
            say(f"sending report {report_id} to {', '.join(to)} through {setup.server.display}")
            outcome.status, outcome.error = _send_recorded(engine, report_id, setup, now=now)
            if outcome.status == "sent":
                with engine.connect() as conn:
                    waiting = [r["id"] for r in SQL.execute(conn, "reports_to_retry", max_attempts=MAX_ATTEMPTS,
                                                            not_before=now - RETRY_WITHIN).mappings()]
                for earlier in waiting:
                    status, error = _send_recorded(engine, earlier, setup, now=now)
                    outcome.retried.append({"report_id": earlier, "status": status, "error": error})
                    say(f"report {earlier}, which had failed to send: {status}" + (f" ({error})" if error else ""))
        job.summary = {"report_id": report_id, "status": outcome.status, "recipients": len(to),
                       "needs_attention": len(outcome.attention), "retried": outcome.retried,
                       "period_start": start.isoformat(), "period_end": stop.isoformat()}
        if outcome.status == "failed":
            raise JobFailed(f"{outcome.error} (report {report_id} is recorded; the next run sends it again)")
        if any(r["status"] == "failed" for r in outcome.retried):
            job.summary["retry_failed"] = True
    return outcome


def _write(output: Path | str, html: str) -> str:
    if str(output) == "-":
        sys.stdout.write(html)
        sys.stdout.flush()
        return "-"
    path = Path(output)
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {output}: {exc.strerror or exc}") from None
    return str(path)


# --- command line -----------------------------------------------------------------------

def _end_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-23") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=whole_number(1, 366, unit="days"), default=DEFAULT_DAYS,
                        help=f"length of the period in days (default {DEFAULT_DAYS}); compared with the "
                        "period of the same length before it")
    parser.add_argument("--end", type=_end_date, metavar="YYYY-MM-DD",
                        help="the period ends at 00:00 UTC of this day, exclusive (default: now)")
    parser.add_argument("--to", action="append", metavar="ADDRESS",
                        help="recipient (repeat, or separate with commas); default MONITOR_REPORT_EMAIL_TO")
    parser.add_argument("--output", metavar="FILE",
                        help="write the HTML to FILE ('-' for standard output) instead of mailing it")
    parser.add_argument("--dry-run", action="store_true",
                        help="record and write the report without mailing it "
                        "(to --output, else health-report-<end date>.html here)")


def main(args: argparse.Namespace, ctx) -> int:
    settings = ctx.settings
    sending = not (args.dry_run or args.output)
    setup = mail_setup(settings, args.to) if sending else None
    recipients = None
    if not sending:
        try:
            recipients = mail.parse_addresses(args.to or settings.MONITOR_REPORT_EMAIL_TO)
        except ValueError as exc:
            raise ConfigError(f"--to: {exc}") from None
    now = ctx.now()
    output = args.output
    if args.dry_run and output is None:
        stop = report_data.period_for(days=args.days, end=args.end, now=now)[1]
        output = f"health-report-{stop:%Y-%m-%d}.html"
    if output == "-" and args.json:
        raise ConfigError("--output - and --json both want standard output; choose one")
    outcome = run(ctx.jobs_engine(), now=now, days=args.days, end=args.end, setup=setup,
                  recipients=recipients, output=output, stuck_minutes=settings.MONITOR_STUCK_MINUTES,
                  dashboard_url=settings.MONITOR_DASHBOARD_URL, trigger=ctx.trigger,
                  say=ctx.say if output != "-" else _to_stderr)
    if args.json:
        ctx.print_json(outcome.as_dict())
    else:
        say = ctx.say if output != "-" else _to_stderr
        where = {"sent": f"sent to {', '.join(outcome.recipients)}",
                 "dry_run": "recorded, not sent (dry run)"}.get(outcome.status, outcome.status)
        say(f"report {outcome.report_id} ({period_label(outcome.period_start, outcome.period_end)}): {where}")
        if outcome.error:
            say(f"  note: {outcome.error}")
        for item in outcome.attention:
            say(f"  [{item['level']}] {item['text']}")
    if any(r["status"] == "failed" for r in outcome.retried):
        failed = [str(r["report_id"]) for r in outcome.retried if r["status"] == "failed"]
        ctx.warn(f"earlier report(s) {', '.join(failed)} still could not be sent")
    return 0


def scheduled(engine: Engine, now: datetime, *, settings=None, trigger: str = "schedule") -> ReportOutcome:
    """The weekly scheduled run: the report of the seven whole UTC days before today, mailed
    when mail is configured, else recorded as 'not_sent' with the reason (the Health page
    still shows it)."""
    from core.settings import get_settings

    settings = settings or get_settings()
    try:
        setup, reason = mail_setup(settings), None
    except ConfigError as exc:
        setup, reason = None, f"not mailed: {exc}"
    # The whole UTC days before today: a Monday-morning run reports Monday to Sunday.
    return run(engine, now=now, end=now.astimezone(timezone.utc).date(), setup=setup, not_sent_reason=reason,
               stuck_minutes=settings.MONITOR_STUCK_MINUTES,
               dashboard_url=settings.MONITOR_DASHBOARD_URL, trigger=trigger)


def _to_stderr(line: str) -> None:
    """Progress when the HTML itself goes to standard output."""
    print(line, file=sys.stderr, flush=True)
