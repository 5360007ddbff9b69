"""The PagerDuty channel: Events API v2 (https://developer.pagerduty.com/docs/events-API-v2/trigger-events/).

One PagerDuty alert per monitor alert *fingerprint* (``dedup_key``): ``trigger`` when it
fires (again on a reminder or an escalation: PagerDuty adds a log entry to the open alert),
``acknowledge`` when someone acknowledges it on the dashboard, ``resolve`` when it clears.
After a resolve, the same fingerprint firing again opens a new PagerDuty alert, as it opens
a new alert here. Severities map one to one (critical, warning, info; PagerDuty's ``error``
is not used). The dashboard page of the alert goes in ``links`` when MONITOR_DASHBOARD_URL
is set.

PagerDuty answers 202 when it took the event, 400 for an event it will never take (the
error names the field), 429 when throttled and 5xx when unwell: every non-2xx raises, and
``delivery`` retries like any channel (a 400 too: it says so in the attempt log).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

from jobs.alerting.channels import TIMEOUT_S, USER_AGENT, DeliveryError, dashboard_link, message

NAME = "pagerduty"
ACTIONS = {"firing": "trigger", "reminder": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info"}
CLIENT = "Stripe webhook monitor"
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def event(notification: dict[str, Any], *, routing_key: str, dashboard_url: str | None,
          source: str) -> dict[str, Any]:
    """The Events API v2 body for one queued notification (a row of ``claimed_notifications``)."""
    action = ACTIONS[notification["kind"]]
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                            "dedup_key": notification["fingerprint"][:MAX_DEDUP_KEY]}
    if action != "trigger":
        return body
    contract = message(notification, dashboard_url=dashboard_url)
    body["payload"] = {
        "summary": f"{notification['rule']}: {notification['summary']}"[:MAX_SUMMARY],
        "source": source,
        "severity": SEVERITIES.get(notification["severity"], "warning"),
        "timestamp": contract["fired_at"],
        "component": "stripe-webhooks",
        "group": "webhook-monitor",
        "class": notification["rule"],
        "custom_details": {"alert_id": notification["alert_id"], "rule": notification["rule"],
                           "started_at": contract["started_at"], **contract["details"]},
    }
    body["client"] = CLIENT
    link = dashboard_link(dashboard_url, notification.get("page"))
    if link:
        body["client_url"] = link
        body["links"] = [{"href": link, "text": "Open in the webhook monitor"}]
    return body


@dataclass
class PagerDutyChannel:
    routing_key: str
    url: str
    timeout: float = TIMEOUT_S
    source: str = field(default_factory=socket.gethostname)
    name: str = NAME

    def message(self, notification: dict[str, Any], *, dashboard_url: str | None) -> dict[str, Any]:
        """Its own body instead of the contract's (``delivery`` asks the channel first)."""
        return event(notification, routing_key=self.routing_key, dashboard_url=dashboard_url, source=self.source)

    def send(self, body: dict[str, Any]) -> None:
        raw = json.dumps(body, separators=(",", ":"), default=str).encode()
        try:
            response = httpx.post(self.url, content=raw, timeout=self.timeout,
                                  headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"pagerduty {httpx.URL(self.url).host}: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"pagerduty {httpx.URL(self.url).host} answered {response.status_code}: "
                                f"{response.text[:200]}")


def from_settings(settings) -> dict[str, PagerDutyChannel]:
    """The channel when MONITOR_ALERT_PAGERDUTY_ROUTING_KEY is set, by name."""
    if not settings.MONITOR_ALERT_PAGERDUTY_ROUTING_KEY:
        return {}
    return {NAME: PagerDutyChannel(settings.MONITOR_ALERT_PAGERDUTY_ROUTING_KEY, settings.MONITOR_ALERT_PAGERDUTY_URL)}
