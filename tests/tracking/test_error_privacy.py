"""A failed database statement whose parameters hold a customer's e-mail address: job_runs keeps
one line without the statement, its parameters or the failing row; the job_failed alert reaches
the webhook without them and its e-mail is sent (a real HTTP sink and a real SMTP server)."""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import mail
from core.settings import get_settings
from devharness.http_sink import HttpSink
from devharness.smtp import SmtpServer
from jobs.alerting import lifecycle
from jobs.alerting import notify as delivery
from jobs.alerting.channels import EmailChannel, WebhookChannel, email_content, headline
from jobs.runtime import recorded_run

REPO = Path(__file__).resolve().parents[2]
CUSTOMER = "alice.customer@example.org"
# processing_status is NOT NULL: PostgreSQL refuses the row and shows it whole in its DETAIL line.
FAILING_INSERT = sa.text("""INSERT INTO registrations_archive (id, email, created_at, archive_reason, row_data)
                            VALUES (gen_random_uuid(), :email, now(), 'no_session', '{}')""")


def test_a_failed_statement_leaves_no_customer_data_in_the_run_the_alerts_or_the_mail(db):
    now = datetime.now(timezone.utc)
    with pytest.raises(sa.exc.IntegrityError) as raised:
        with recorded_run(db, "cleanup", now=now):
            with db.begin() as conn:
                conn.execute(FAILING_INSERT, {"email": CUSTOMER})
    # The engine hides the parameters even from the exception's own text (and so from logs).
    assert "[parameters:" not in str(raised.value) and "hide_parameters" in str(raised.value)

    with db.connect() as conn:
        error = conn.execute(sa.text("SELECT error FROM job_runs WHERE job = 'cleanup'")).scalar_one()
    assert error.startswith("NotNullViolation: null value in column \"processing_status\"")
    assert CUSTOMER not in error and "\n" not in error and "[SQL" not in error and "INSERT" not in error

    with HttpSink() as sink, SmtpServer() as smtp:
        channels = {"webhook": WebhookChannel(sink.url),
                    "email": EmailChannel(smtp.url, "monitor@example.com", ["ops@example.com"])}
        evaluation = lifecycle.evaluate(db, now=now, settings=get_settings(), channels=list(channels))
        assert [a["fingerprint"] for a in evaluation.fired] == ["job_failed:cleanup"]
        report = delivery.deliver(db, now=now, channels=channels, dashboard_url=None, wait_multiplier=0.01)
        assert report.failed == 0 and report.sent == 2, report.as_dict()
        [request] = sink.wait_for(1)
        [sent] = smtp.messages
    assert CUSTOMER not in request.body.decode() and "NotNullViolation" in request.json()["summary"]
    assert sent["Subject"].startswith("[WARNING] job_failed: The last cleanup run failed: NotNullViolation")
    assert CUSTOMER not in sent.as_string()


def test_every_headline_and_mail_subject_is_one_line():
    body = {"status": "firing", "severity": "warning", "rule": "job_failed", "details": {}, "url": None,
            "summary": "The last cleanup run failed: first line\n  second\r\nthird\tend", "started_at": "s",
            "fired_at": "f", "resolved_at": None}
    assert headline(body) == "[WARNING] job_failed: The last cleanup run failed: first line second third end"
    subject, _text, _html = email_content(body)
    message = mail.build_message(sender="monitor@example.com", recipients=["ops@example.com"],
                                 subject="Weekly report\nBcc: someone@example.net", text="body")
    assert "\n" not in subject and message["Subject"] == "Weekly report Bcc: someone@example.net"
    assert message["Bcc"] is None


def test_every_engine_the_project_creates_hides_its_parameters():
    missing = []
    for path in sorted(REPO.glob("**/*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith((".venv/", "tests/", "node_modules/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), relative)):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                    == "create_engine"):
                hidden = any(k.arg == "hide_parameters" and getattr(k.value, "value", None) is True
                             for k in node.keywords)
                if not hidden:
                    missing.append(f"{relative}:{node.lineno}")
    assert missing == []
