"""Stripe's own view of the webhook endpoints, read by every sweep.

Stripe disables an endpoint that keeps failing and says so only by e-mail to the account
owner (https://docs.stripe.com/webhooks#disable-an-endpoint); an endpoint can also be
subscribed to the wrong event types, or render its events in an API version the handler
does not expect. The sweep finds the events that went missing, not why: this check reads
``GET /v1/webhook_endpoints`` (a restricted key needs "Webhook Endpoints: Read") and
records each endpoint with its judgement (:func:`judge`), which the alert rules
``endpoint_disabled`` and ``endpoint_misconfigured`` and the Health page read.

The app's endpoint is the one whose URL is MONITOR_STRIPE_ENDPOINT_URL; unset, every
endpoint of the account is the app's. An endpoint whose ``api_version`` is null renders
events in the account's default version, which the API does not tell: no mismatch is
claimed for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Protocol

from sqlalchemy.engine import Engine

from core.sql import load_package
from core.stripe_api import API_VERSION

SQL = load_package("jobs.replay", "stripe_endpoints.sql")
PERMISSION = "Webhook Endpoints: Read"


class EndpointSource(Protocol):
    def iter_webhook_endpoints(self) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class Judgement:
    watched: bool
    missing_events: list[str]
    api_version_mismatch: bool

    @property
    def misconfigured(self) -> bool:
        return bool(self.missing_events) or self.api_version_mismatch


@dataclass
class EndpointCheck:
    seen: int = 0
    watched: int = 0
    disabled: list[str] = field(default_factory=list)  # URLs of the app's disabled endpoints
    misconfigured: list[str] = field(default_factory=list)
    error: str | None = None  # the check could not read Stripe (the sweep itself went on)

    def as_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "watched": self.watched, "disabled": self.disabled,
                "misconfigured": self.misconfigured, "error": self.error}


def _same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def covers(enabled_events: Iterable[str], needed: str) -> bool:
    """Whether an endpoint subscribed to ``enabled_events`` receives the type (or group
    ``x.*``) ``needed``: '*' receives everything."""
    enabled = set(enabled_events)
    if "*" in enabled or needed in enabled:
        return True
    if needed.endswith(".*"):
        return any(name.startswith(needed[:-1]) for name in enabled)
    return False


def judge(endpoint: dict[str, Any], *, needed: list[str], endpoint_url: str | None,
          expected_version: str = API_VERSION) -> Judgement:
    """Is this the app's endpoint, which needed event types does it not receive, and does it
    render events in another API version than the pinned one (pure)?"""
    watched = endpoint_url is None or _same_url(endpoint["url"], endpoint_url)
    missing = [name for name in needed if not covers(endpoint.get("enabled_events") or [], name)]
    version = endpoint.get("api_version")
    return Judgement(watched, missing, version is not None and version != expected_version)


def check(engine: Engine, source: EndpointSource, *, now: datetime, needed: list[str],
          endpoint_url: str | None) -> EndpointCheck:
    """List the account's endpoints and record them with their judgement; Stripe failures
    raise (the caller decides whether they stop anything)."""
    endpoints = list(source.iter_webhook_endpoints())
    report = EndpointCheck(seen=len(endpoints))
    with engine.begin() as conn:
        for endpoint in endpoints:
            verdict = judge(endpoint, needed=needed, endpoint_url=endpoint_url)
            created = endpoint.get("created")
            SQL.execute(conn, "record_endpoint", id=endpoint["id"], url=endpoint["url"],
                        status=endpoint.get("status") or "enabled", api_version=endpoint.get("api_version"),
                        enabled_events=list(endpoint.get("enabled_events") or []),
                        livemode=bool(endpoint.get("livemode")), description=endpoint.get("description"),
                        created_at=datetime.fromtimestamp(created, tz=timezone.utc) if created else None,
                        watched=verdict.watched, missing_events=verdict.missing_events,
                        expected_api_version=API_VERSION, api_version_mismatch=verdict.api_version_mismatch,
                        now=now)
            if verdict.watched:
                report.watched += 1
                if endpoint.get("status") == "disabled":
                    report.disabled.append(endpoint["url"])
                if verdict.misconfigured:
                    report.misconfigured.append(endpoint["url"])
        SQL.execute(conn, "forget_unseen", seen=[endpoint["id"] for endpoint in endpoints])
    return report


def read(bind) -> list[dict[str, Any]]:
    """Every recorded endpoint (the Health page)."""
    return SQL.all(bind, "endpoints")
