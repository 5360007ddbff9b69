"""Where notifications go: the generic JSON webhook, Slack, e-mail.

Each channel turns one message (``message()``: the contract's webhook body) into its own
format and sends it, raising on failure; retries and recording are ``delivery``'s job.
``from_settings()`` builds the channels whose settings are present.

- webhook: POST of the JSON body, ``Monitor-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
  "<t>.<body>")>`` when MONITOR_ALERT_WEBHOOK_SECRET is set (Stripe's own scheme, so a
  receiver can verify it the way it verifies Stripe's).
- slack: an incoming webhook, sent with ``slack_sdk``'s WebhookClient and Block Kit models
  (the SDK validates blocks and reports Slack's error text, e.g. ``invalid_blocks``).
- email: through ``core.mail`` (MONITOR_SMTP_URL, MONITOR_EMAIL_FROM), text and HTML.

Text from outside (event types, error messages) goes into Slack as plain_text and is
escaped in HTML.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import httpx

from core.errors import MonitorError
from core.outbound import read_capped, url_host
from core.settings import Settings
from tracking.signing import stripe_signature

USER_AGENT = "stripe-webhook-monitor-alerts/1"
TIMEOUT_S = 5.0
SEVERITY_MARK = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


class DeliveryError(MonitorError):
    """A channel refused or could not take a message (one line: who and why)."""


class Channel(Protocol):
    name: str

    def send(self, message: dict[str, Any]) -> None: ...


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def dashboard_link(dashboard_url: str | None, page: str | None) -> str | None:
    """The dashboard page showing an alert's subject, or None without MONITOR_DASHBOARD_URL."""
    if not dashboard_url:
        return None
    base = dashboard_url.rstrip("/")
    return f"{base}/{page}" if page else f"{base}/"


def message(notification: dict[str, Any], *, dashboard_url: str | None) -> dict[str, Any]:
    """The contract body for one notification (times in ISO 8601 UTC)."""
    kind = notification["kind"]
    details = notification.get("details") or {}
    return {
        "alert_id": notification["alert_id"],
        "rule": notification["rule"],
        "status": "resolved" if kind == "resolved" else "firing",
        "severity": notification["severity"],
        "summary": notification["summary"],
        "started_at": _iso(notification["started_at"]),
        "fired_at": _iso(notification["fired_at"]),
        "resolved_at": _iso(notification["resolved_at"]) if kind == "resolved" else None,
        "details": {key: _iso(value) for key, value in details.items()},
        "url": dashboard_link(dashboard_url, notification.get("page")),
    }


def headline(body: dict[str, Any]) -> str:
    """'[RESOLVED] warning failure_rate: ...' — subject lines and fallback text."""
    state = "RESOLVED" if body["status"] == "resolved" else body["severity"].upper()
    # One line whatever the summary holds (an error's text may span lines): a mail header
    # cannot contain a line break, and a chat headline should not.
    return " ".join(f"[{state}] {body['rule']}: {body['summary']}".split())


@dataclass
class WebhookChannel:
    url: str
    secret: str | None = None
    timeout: float = TIMEOUT_S
    name: str = "webhook"

    def send(self, body: dict[str, Any]) -> None:
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.secret:
            headers["Monitor-Signature"] = stripe_signature(raw, self.secret, timestamp=int(time.time()))
        try:
            with httpx.stream("POST", self.url, content=raw, headers=headers, timeout=self.timeout) as response:
                answer, _cut = read_capped(response)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {_host(self.url)}: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            text = " ".join(answer.decode("utf-8", "replace").split())[:200]
            raise DeliveryError(f"webhook {_host(self.url)} answered {response.status_code}: {text}")


def slack_text(text: str) -> str:
    """Slack's escaping of &, < and > for the fallback text, so outside text cannot mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(body: dict[str, Any]) -> list:
    """Block Kit: severity and summary, the numbers, a link to the dashboard page."""
    from slack_sdk.models.blocks import (
        ActionsBlock,
        ButtonElement,
        ContextBlock,
        HeaderBlock,
        PlainTextObject,
        SectionBlock,
    )

    resolved = body["status"] == "resolved"
    mark = "✅" if resolved else SEVERITY_MARK.get(body["severity"], "")
    state = "Resolved" if resolved else body["severity"].capitalize()
    numbers = [(k, v) for k, v in body["details"].items() if isinstance(v, (int, float, str)) and v is not None]
    # Plain text wherever outside text goes (summaries and details hold event types and error
    # messages): Slack shows it as written, no formatting, links or mentions.
    fields = [PlainTextObject(text=f"{k}: {v}"[:2000], emoji=False) for k, v in numbers[:10]]
    blocks = [
        HeaderBlock(text=PlainTextObject(text=f"{mark} {state}: {body['rule']}"[:150], emoji=True)),
        SectionBlock(text=PlainTextObject(text=body["summary"][:3000], emoji=False), fields=fields or None),
        ContextBlock(elements=[PlainTextObject(text=" · ".join(
            f"{label} {body[key]}" for label, key in
            (("started", "started_at"), ("fired", "fired_at"), ("resolved", "resolved_at")) if body[key]))]),
    ]
    if body["url"]:
        blocks.append(ActionsBlock(elements=[ButtonElement(text="Open the dashboard", url=body["url"],
                                                           action_id="open_dashboard")]))
    return blocks


@dataclass
class SlackChannel:
    url: str
    timeout: float = TIMEOUT_S
    name: str = "slack"

    def send(self, body: dict[str, Any]) -> None:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(self.url, timeout=int(self.timeout) or 1, user_agent_prefix=USER_AGENT)
        try:
            response = client.send(text=slack_text(headline(body)), blocks=slack_blocks(body))
        except Exception as exc:  # URLError, timeouts: slack_sdk uses urllib
            raise DeliveryError(f"slack {_host(self.url)}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise DeliveryError(f"slack {_host(self.url)} answered {response.status_code}: {response.body[:200]}")


def email_content(body: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) for one alert message."""
    subject = headline(body)[:200]
    rows = [("Rule", body["rule"]), ("Severity", body["severity"]), ("Status", body["status"]),
            ("Started", body["started_at"]), ("Fired", body["fired_at"]), ("Resolved", body["resolved_at"])]
    rows += [(str(k), v) for k, v in body["details"].items() if v is not None]
    text = "\n".join([body["summary"], ""] + [f"{label}: {value}" for label, value in rows if value is not None]
                     + ([f"\nDashboard: {body['url']}"] if body["url"] else []))
    table = "".join(f"<tr><th align='left'>{html.escape(str(label))}</th><td>{html.escape(str(value))}</td></tr>"
                    for label, value in rows if value is not None)
    link = f"<p><a href='{html.escape(body['url'])}'>Open the dashboard</a></p>" if body["url"] else ""
    page = f"<html><body><p><strong>{html.escape(body['summary'])}</strong></p><table>{table}</table>{link}</body></html>"
    return subject, text, page


@dataclass
class EmailChannel:
    smtp_url: str
    sender: str
    recipients: list[str]
    timeout: float = 10.0
    name: str = "email"

    def send(self, body: dict[str, Any]) -> None:
        from core import mail

        subject, text, page = email_content(body)
        message = mail.build_message(sender=self.sender, recipients=self.recipients, subject=subject,
                                     text=text, html=page)
        try:
            mail.send(message, mail.parse_smtp_url(self.smtp_url), timeout=self.timeout)
        except Exception as exc:
            raise DeliveryError(f"email: {exc}") from None


def _host(url: str) -> str:
    """A URL's host only: webhook URLs (Slack's especially) carry secrets in their path."""
    return url_host(url)


def from_settings(settings: Settings) -> dict[str, Channel]:
    """The channels configured in the settings, by name."""
    channels: dict[str, Channel] = {}
    if settings.MONITOR_ALERT_WEBHOOK_URL:
        channels["webhook"] = WebhookChannel(settings.MONITOR_ALERT_WEBHOOK_URL, settings.MONITOR_ALERT_WEBHOOK_SECRET)
    if settings.MONITOR_ALERT_SLACK_WEBHOOK_URL:
        channels["slack"] = SlackChannel(settings.MONITOR_ALERT_SLACK_WEBHOOK_URL)
    smtp_url, sender = settings.MONITOR_SMTP_URL, settings.MONITOR_EMAIL_FROM
    if settings.MONITOR_ALERT_EMAIL_TO and smtp_url and sender:
        from core.mail import parse_addresses

        channels["email"] = EmailChannel(smtp_url, sender, parse_addresses(settings.MONITOR_ALERT_EMAIL_TO))
    return channels
