"""python -m jobs health-report against a real SMTP server (aiosmtpd) on the hand-built week:
one message per run, multipart/alternative, the numbers in it, SMTP down, retries, dry runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.errors import JobFailed
from core.settings import get_settings
from devharness.smtp import SmtpServer, cert_authority
from jobs.health import report as health_report
from jobs.schedule import runner as schedule
from jobs.schedule import timetable
from tests.support.report_week import END, NOW, START, build_week

SENDER = "Webhook monitor <monitor@example.org>"


@pytest.fixture
def week(db):
    build_week(db)
    return db


def _reports(engine):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT id, status, attempts, recipients, sent_at, error, trigger, period_start, period_end, html, text "
            "FROM health_reports ORDER BY id")).mappings()]


def _job_runs(engine):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT status, error FROM job_runs WHERE job = 'health-report' ORDER BY id"))]


def _setup(url, to=("ops@example.org",)):
    from core import mail

    return health_report.MailSetup(mail.parse_smtp_url(url), SENDER, list(to), cert_authority().client_context())


def _cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "jobs", "health-report", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_one_multipart_message_per_run_with_the_weeks_numbers(week):
    with SmtpServer() as smtp:
        outcome = health_report.run(week, now=NOW, end=END.date(), setup=_setup(smtp.url, ["ops@example.org",
                                                                                             "cto@example.org"]),
                                    dashboard_url="https://monitor.example.org", trigger="cli")
        [message] = smtp.messages
    assert outcome.status == "sent" and outcome.retried == []
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "Webhook health 16–22 Nov 2026: 8 things need attention"
    assert message["To"] == "ops@example.org, cto@example.org"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    for words in ("3 events of this period are still failed (network 2, validation 1); 2 with no automatic "
                  "retry planned.", "2   retry planned 1, needs a person 1; before: 0",
                  "Fixed automatically: 9 of 10 = 90.0% (target 90%, met", "75.00 EUR", "500 JPY",
                  "Money waiting for a decision: 25.00 EUR, 49.00 USD", "Events received                            12",
                  "https://monitor.example.org/errors",
                  "Found: 3 (before: 0); replayed 1, recovered 2, still missing 1",
                  "Time to detect: median 40 s (target 60 s; before: –), p95 85 s, longest 90 s"):
        assert words in text, words
    for words in ("72.7%", "75.00 EUR", "500 JPY", "49.00 USD", 'href="https://monitor.example.org/reconciliation"',
                  "connect timeout after &lt;n&gt; ms to db-&lt;n&gt;",
                  "Money waiting for a decision: 25.00 EUR (1 item), 49.00 USD (1 item).",
                  "money at risk 49.00 USD", "<code style=\"font-family:Menlo,Consolas,monospace;font-size:12px;\">"
                  "payment_event_failed</code>"):
        assert words in html, words
    assert "<script" not in html.lower() and "&lt;script&gt;alert" in html  # an error message is text, not markup
    [row] = _reports(week)
    assert (row["status"], row["attempts"], row["recipients"], row["trigger"]) == (
        "sent", 1, ["ops@example.org", "cto@example.org"], "cli")
    assert row["sent_at"] == NOW and (row["period_start"], row["period_end"]) == (START, END)
    assert row["html"] == html and row["text"] == text  # what was mailed is what the page shows
    assert _job_runs(week) == [("completed", None)]


def test_cli_mails_through_starttls_with_auth_and_prints_json(week):
    with SmtpServer(starttls=True, credentials=("ops", "s3cret")) as smtp:
        result = _cli("--end", "2026-11-23", "--to", "a@example.org,b@example.org", "--json", env_extra={
            "MONITOR_SMTP_URL": smtp.url, "MONITOR_EMAIL_FROM": SENDER,
            "SSL_CERT_FILE": str(cert_authority().ca_file)})
        assert result.returncode == 0, result.stderr
        assert len(smtp.messages) == 1
        assert smtp.envelopes[0][1] == ["a@example.org", "b@example.org"]
    summary = json.loads(result.stdout)
    assert summary["status"] == "sent" and summary["recipients"] == ["a@example.org", "b@example.org"]
    assert summary["data"]["current"]["events"]["events_received"] == 12
    assert summary["period_start"].startswith("2026-11-16T00:00:00")


def test_smtp_down_exits_1_with_one_line_and_keeps_the_report(week, down_port):
    url = f"smtp://127.0.0.1:{down_port}"
    result = _cli("--end", "2026-11-23", "--to", "ops@example.org",
                  env_extra={"MONITOR_SMTP_URL": url, "MONITOR_EMAIL_FROM": SENDER})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"failed: could not send mail through {url}: connection refused (is the server running on that port?) "
        "(report 1 is recorded; the next run sends it again)"]
    [row] = _reports(week)
    assert (row["status"], row["attempts"]) == ("failed", 1) and "connection refused" in row["error"]
    assert _job_runs(week)[0][0] == "failed"


def test_a_failed_send_is_retried_by_the_next_scheduled_run(week, down_port):
    with pytest.raises(JobFailed):
        health_report.run(week, now=NOW, end=END.date(), setup=_setup(f"smtp://127.0.0.1:{down_port}"),
                          trigger="cli")
    with SmtpServer() as smtp:
        settings = get_settings(MONITOR_SMTP_URL=smtp.url, MONITOR_EMAIL_FROM=SENDER,
                                MONITOR_REPORT_EMAIL_TO="ops@example.org")
        outcome = health_report.scheduled(week, NOW + timedelta(days=7), settings=settings)
        subjects = [m["Subject"] for m in smtp.messages]
    assert outcome.status == "sent" and outcome.retried == [{"report_id": 1, "status": "sent", "error": None}]
    assert [subject.split(":")[0] for subject in subjects] == ["Webhook health 23–29 Nov 2026",
                                                               "Webhook health 16–22 Nov 2026"]
    assert subjects[1] == "Webhook health 16–22 Nov 2026: 8 things need attention"  # as first built
    first, second = _reports(week)
    assert (first["status"], first["attempts"], first["sent_at"]) == ("sent", 2, NOW + timedelta(days=7))
    assert (second["status"], second["trigger"]) == ("sent", "schedule")
    # Sent once: a third run retries nothing.
    with SmtpServer() as smtp:
        again = health_report.scheduled(week, NOW + timedelta(days=14), settings=get_settings(
            MONITOR_SMTP_URL=smtp.url, MONITOR_EMAIL_FROM=SENDER, MONITOR_REPORT_EMAIL_TO="ops@example.org"))
        assert len(smtp.messages) == 1 and again.retried == []


def test_dry_run_writes_the_html_and_sends_nothing(week, tmp_path):
    out = tmp_path / "report.html"
    with SmtpServer() as smtp:
        result = _cli("--end", "2026-11-23", "--dry-run", "--output", str(out),
                      env_extra={"MONITOR_SMTP_URL": smtp.url, "MONITOR_EMAIL_FROM": SENDER,
                                 "MONITOR_REPORT_EMAIL_TO": "ops@example.org"})
        assert result.returncode == 0, result.stderr
        assert smtp.messages == []
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Health report, 16–22 Nov 2026" in html
    assert "<script" not in html.lower()
    [row] = _reports(week)
    assert (row["status"], row["recipients"], row["html"]) == ("dry_run", ["ops@example.org"], html)
    assert "recorded, not sent (dry run)" in result.stdout


def test_output_dash_prints_the_html_without_mail_settings(db):
    result = _cli("--end", "2026-11-23", "--output", "-", env_extra={"MONITOR_SMTP_URL": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert "No webhook event was received in this period" in result.stdout  # an empty week says so
    assert "report 1 (16–22 Nov 2026): recorded, not sent (dry run)" in result.stderr


def test_missing_mail_settings_exit_2_with_one_line(db):
    result = _cli("--to", "ops@example.org", env_extra={"MONITOR_SMTP_URL": "", "MONITOR_EMAIL_FROM": SENDER})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: MONITOR_SMTP_URL is not set (smtp://user:password@host:587); use --dry-run or --output "
        "to write the report without sending it"]
    assert _reports(db) == []
    bad = _cli("--to", "not-an-address", "--dry-run", "--output", "-")
    assert bad.returncode == 2 and "'not-an-address' is not an e-mail address" in bad.stderr
    assert _cli("--end", "23/11/2026", "--dry-run").returncode == 2


def test_scheduled_run_without_mail_settings_records_the_report_as_not_sent(db):
    outcome = health_report.scheduled(db, NOW, settings=get_settings(MONITOR_SMTP_URL=None))
    [row] = _reports(db)
    assert outcome.status == row["status"] == "not_sent"
    assert row["error"].startswith("not mailed: MONITOR_SMTP_URL is not set")


def test_the_default_schedule_mails_the_report_on_monday_morning(monkeypatch):
    monkeypatch.delenv("MONITOR_SCHEDULE", raising=False)
    monkeypatch.setenv("MONITOR_SCHEDULE_TIMEZONE", "Europe/Berlin")
    [entry] = [e for e in timetable.load_schedule() if e.job == "health-report"]
    fire = timetable.next_fire_times([entry], NOW)["health-report"]  # NOW is a Monday, 08:00 in Berlin
    assert fire.strftime("%A %H:%M") == "Monday 07:00" and str(fire.tzinfo) == "Europe/Berlin"
    assert fire.date() == (NOW + timedelta(days=7)).date()
    assert "health-report" in schedule.SCHEDULABLE
