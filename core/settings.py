"""Every setting the project reads, declared once with its default and help text.

Settings come from the environment and are read when used (``get_settings()`` builds a
fresh object each call), so a test or a long-running process sees the current values.
The README's configuration table is checked against this declaration by a test.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

APP_NAME = "stripe-webhook-monitor"
DEFAULT_SCHEDULE = ("reconcile=0 3 * * *;cleanup=30 3 * * *;health-snapshot=0 * * * *;"
                    "health-report=0 7 * * 1;retry=* * * * *;"
                    # The daily sweep starts off the short one's 5-minute beat, so it never finds
                    # the sweep lock taken at its time.
                    "sweep=*/5 * * * *;sweep-daily=47 3 * * *")
DEFAULT_SWEEP_EVENT_TYPES = ("checkout.session.completed,checkout.session.async_payment_succeeded,"
                             "checkout.session.async_payment_failed,checkout.session.expired")


def default_data_dir() -> Path:
    """Per-user folder for the embedded database, outside the repository.

    As root, /var/lib/<app>: PostgreSQL then runs as its own system user, which could not
    enter /root, and the project does not open folders it did not create.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib") / APP_NAME
    return Path(platformdirs.user_data_dir(APP_NAME))


class Settings(BaseSettings):
    """The project's configuration; field names are the environment variable names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    DATABASE_URL: str | None = Field(
        None,
        description="PostgreSQL URL for jobs and migrations (read-write). "
        "Unset: the embedded PostgreSQL in MONITOR_DATA_DIR (with MONITOR_EMBEDDED=off: exit 2).",
    )
    DASHBOARD_DATABASE_URL: str | None = Field(
        None,
        description="URL the dashboard connects with, meant for a read-only role. "
        "Unset: DATABASE_URL, still with read-only transactions.",
    )
    STRIPE_API_KEY: str | None = Field(
        None,
        description="Stripe secret or restricted key; read access to Checkout Sessions "
        "and Events is enough for reconciliation and cleanup.",
    )
    STRIPE_API_BASE: str | None = Field(
        None,
        description="Stripe API base URL, e.g. a local test server. Unset: Stripe itself.",
    )
    STRIPE_WEBHOOK_SECRET: str | None = Field(
        None,
        description="Webhook signing secrets (whsec_...), comma-separated: the reference receiver "
        "accepts a signature valid for any of them (rotation); re-deliveries are signed with the first.",
    )
    MONITOR_AUTH: Literal["auto", "password", "oidc", "none"] = Field(
        "auto",
        description="Dashboard login: 'oidc' uses [auth] in .streamlit/secrets.toml, "
        "'password' a password form, 'auto' picks oidc when configured else password, "
        "'none' disables login (only on a loopback address; a banner says so).",
    )
    MONITOR_PASSWORD_HASH: str | None = Field(
        None,
        description="Hash of the dashboard password (make one with "
        "'python -m jobs hash-password'); also read from secrets.toml.",
    )
    MONITOR_DATA_DIR: Path = Field(
        default_factory=default_data_dir,
        description="Folder holding the embedded PostgreSQL data (used only when "
        "DATABASE_URL is unset); as root the default is /var/lib/stripe-webhook-monitor.",
    )
    MONITOR_EMBEDDED: Literal["auto", "off"] = Field(
        "auto",
        description="'auto': without DATABASE_URL, start the embedded PostgreSQL in "
        "MONITOR_DATA_DIR. 'off' (production; the image sets it): a process without "
        "DATABASE_URL exits 2 saying to set it, and creates nothing.",
    )
    MONITOR_STATEMENT_TIMEOUT_MS: int = Field(
        5000,
        ge=100,
        le=600_000,
        description="Longest a dashboard query may run before PostgreSQL cancels it, in ms.",
    )
    MONITOR_METRICS_BUDGET_MS: int = Field(
        3000, ge=100, le=60_000,
        description="Longest one scrape of 'python -m jobs metrics' may query the database, in "
        "ms (statement_timeout); past it the scrape says webhook_monitor_up 0.",
    )
    MONITOR_STUCK_MINUTES: int = Field(
        15,
        ge=1,
        description="An event still 'processing' after this many minutes counts as stuck "
        "(at least MONITOR_RECLAIM_MINUTES).",
    )
    MONITOR_SCHEDULE: str = Field(
        DEFAULT_SCHEDULE,
        description="What 'python -m jobs schedule' runs and when: 'job=cron;job=cron' with "
        "five-field crontab expressions (minute hour day month weekday, 0 = Sunday).",
    )
    MONITOR_SCHEDULE_TIMEZONE: str = Field(
        "UTC",
        description="Time zone the MONITOR_SCHEDULE times are read in (an IANA name).",
    )

    # --- e-mail and the weekly health report (core/mail.py, jobs/health/report.py) ---------
    MONITOR_SMTP_URL: str | None = Field(
        None,
        description="Mail server: smtp://user:password@host:port (port 25 unless given; STARTTLS "
        "whenever the server offers it, and a password is never sent unencrypted except to "
        "a loopback relay) or smtps://user:password@host:port (TLS, port 465 unless given). "
        "Percent-encode special characters in the user name and password.",
    )
    MONITOR_EMAIL_FROM: str | None = Field(
        None,
        description="Sender address of the mail the monitor sends, e.g. "
        "'Webhook monitor <monitor@example.org>'.",
    )
    MONITOR_REPORT_EMAIL_TO: str | None = Field(
        None,
        description="Comma-separated recipients of the weekly health report "
        "('python -m jobs health-report'; --to overrides).",
    )
    MONITOR_DASHBOARD_URL: str | None = Field(
        None,
        description="The dashboard's public URL (https://monitor.example.org), for links in "
        "alerts and reports. Unset: mail carries no links.",
    )

    # --- error policy, retry and re-delivery (tracking/, jobs/replay/retry.py) ---
    MONITOR_REPLAY_URL: str | None = Field(
        None,
        description="The app's webhook endpoint: 'retry' and 'sweep --replay' re-deliver stored "
        "events there as Stripe would (the event JSON signed with the first STRIPE_WEBHOOK_SECRET). "
        "Must be https:// (plain http:// only to a loopback address); messages show its host only.",
    )

    @field_validator("MONITOR_REPLAY_URL")
    @classmethod
    def _replay_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be the app's webhook endpoint as an http(s) URL, "
                             "e.g. https://app.example.com/stripe/webhook")
        return value

    # --- alerting (python -m jobs watch) ---------------------------------------------------
    MONITOR_ALERT_INTERVAL_S: int = Field(
        10, ge=1, le=3600,
        description="How often 'watch' evaluates every alert rule, in seconds, besides reacting "
        "at once to database notifications.",
    )
    MONITOR_ALERT_WEBHOOK_URL: str | None = Field(
        None, description="Generic JSON webhook that receives every alert notification (POST).",
    )
    MONITOR_ALERT_WEBHOOK_SECRET: str | None = Field(
        None, description="When set, alert webhooks carry Monitor-Signature: t=<unix>,v1=<hex "
        "HMAC-SHA256(secret, '<t>.<body>')>.",
    )
    MONITOR_ALERT_SLACK_WEBHOOK_URL: str | None = Field(
        None, description="Slack incoming-webhook URL for alerts.",
    )
    MONITOR_ALERT_EMAIL_TO: str | None = Field(
        None, description="Comma-separated recipients of alert e-mails (sent through MONITOR_SMTP_URL).",
    )
    MONITOR_ALERT_PAGERDUTY_ROUTING_KEY: str | None = Field(
        None,
        description="Integration (routing) key of a PagerDuty service's Events API v2 integration: "
        "alerts trigger, acknowledge and resolve incidents there.",
    )
    MONITOR_ALERT_PAGERDUTY_URL: str = Field(
        "https://events.pagerduty.com/v2/enqueue",
        description="PagerDuty's Events API v2 enqueue endpoint (change it only for an EU "
        "service, events.eu.pagerduty.com, or a test server).",
    )
    MONITOR_ALERT_REMINDER_HOURS: float = Field(
        4, ge=0.25, le=168,
        description="While an alert fires (and nobody acknowledged it), remind at most this often.",
    )
    MONITOR_ALERT_PAYMENT_LOOKBACK_HOURS: int = Field(
        72, ge=1, le=720,
        description="payment_event_failed looks at checkout events received this many hours back "
        "(Stripe retries for 3 days).",
    )
    MONITOR_ALERT_FAILURE_WINDOW_MINUTES: int = Field(
        10, ge=1, le=1440, description="failure_rate measures the events of the last this many minutes.",
    )
    MONITOR_ALERT_FAILURE_MIN_EVENTS: int = Field(
        20, ge=1, description="failure_rate judges a window only with at least this many events.",
    )
    MONITOR_ALERT_FAILURE_RATE_WARNING: float = Field(
        0.10, gt=0, le=1, description="failure_rate warns at this share of failed events (0.10 = 10 %).",
    )
    MONITOR_ALERT_FAILURE_RATE_CRITICAL: float = Field(
        0.25, gt=0, le=1, description="failure_rate is critical at this share of failed events.",
    )
    MONITOR_ALERT_FAILURE_HOLD_S: int = Field(
        120, ge=0, le=86400,
        description="failure_rate must hold this long before it fires, so a blip that clears "
        "(Stripe's retry succeeding) notifies nobody.",
    )
    MONITOR_ALERT_SILENCE_FACTOR: float = Field(
        10, ge=2, le=1000,
        description="silence fires when no event arrived for this many times the usual gap (and "
        "for at least MONITOR_ALERT_SILENCE_MIN_MINUTES).",
    )
    MONITOR_ALERT_SILENCE_MIN_MINUTES: int = Field(
        30, ge=1, description="silence never fires before this many minutes without an event.",
    )
    MONITOR_ALERT_SILENCE_BASELINE_HOURS: int = Field(
        24, ge=1, le=168, description="The usual gap is measured over this many hours before the last event.",
    )
    MONITOR_ALERT_SILENCE_MIN_EVENTS: int = Field(
        50, ge=2,
        description="silence needs steady traffic first: at least this many events in the baseline hours.",
    )
    MONITOR_ALERT_JOB_GRACE_MINUTES: int = Field(
        30, ge=1, le=1440,
        description="job_failed reports a scheduled job as missed this long after its time.",
    )

    @field_validator("MONITOR_ALERT_WEBHOOK_URL", "MONITOR_ALERT_SLACK_WEBHOOK_URL")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")) or len(value.split("://", 1)[1]) == 0:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _failure_rates_ordered(self):
        if self.MONITOR_ALERT_FAILURE_RATE_CRITICAL < self.MONITOR_ALERT_FAILURE_RATE_WARNING:
            raise ValueError("MONITOR_ALERT_FAILURE_RATE_CRITICAL must not be below MONITOR_ALERT_FAILURE_RATE_WARNING")
        return self

    # --- missed events: the sweep (jobs/replay/sweep.py) ---
    MONITOR_SWEEP_EVENT_TYPES: str = Field(
        DEFAULT_SWEEP_EVENT_TYPES,
        description="Event types the app's endpoint receives, comma-separated (exact types, or "
        "a group ending in '.*'): the sweep asks Stripe for these only. Copy them from the "
        "endpoint's enabled_events; the default is what the reference receiver handles.",
    )

    MONITOR_STRIPE_ENDPOINT_URL: str | None = Field(
        None,
        description="The app's webhook endpoint URL as registered at Stripe, whose Stripe-side "
        "state (enabled, event types, API version) the sweep checks; unset: every endpoint of "
        "the account.",
    )

    @field_validator("MONITOR_SWEEP_EVENT_TYPES")
    @classmethod
    def _sweep_event_types(cls, value: str) -> str:
        sweep_event_types(value)
        return value
    # --- security: who may log in (OIDC allow-list, login throttle behind a proxy) --------
    MONITOR_ALLOWED_EMAILS: str | None = Field(
        None,
        description="OIDC login: comma-separated addresses and @domain entries let in "
        "(the identity provider must also say the address is verified); OIDC refuses to "
        "start without it.",
    )

    @field_validator("MONITOR_ALLOWED_EMAILS")
    @classmethod
    def _allowed_emails(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parse_allowed_emails(value)
        return value.strip()

    MONITOR_TRUSTED_PROXIES: str = Field(
        "127.0.0.0/8,::1",
        description="Password login behind a reverse proxy: comma-separated addresses and CIDR "
        "networks of the proxies whose X-Forwarded-For the login throttle believes. A request "
        "from a listed proxy is counted by the last address in X-Forwarded-For that is not itself "
        "a listed proxy; any other request by its own address. The default believes a proxy on "
        "this machine only.",
    )

    @field_validator("MONITOR_TRUSTED_PROXIES")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        parse_networks(value)
        return value.strip()

    # --- crash safety: taking over an event from a worker (tracking/) ----------------------
    MONITOR_RECLAIM_MINUTES: int = Field(
        5,
        ge=1,
        le=1440,
        description="A re-delivery takes over an event still 'processing' after this many "
        "minutes although its worker still holds its database connection (a hung worker). A "
        "worker that died is taken over at the next delivery, whatever this says. Must not "
        "exceed MONITOR_STUCK_MINUTES.",
    )

    # --- crash safety: a Stripe that does not answer (jobs/stripe_gateway.py) --------------
    STRIPE_TIMEOUT_SECONDS: int = Field(
        20,
        ge=1,
        le=300,
        description="Longest wait for Stripe's answer to one request (connecting, then between "
        "bytes read), in seconds; a request that times out is retried like a 500 (3 retries), so a "
        "Stripe that hangs fails a job within about 4 times this. The stripe library's own is 80.",
    )

    @model_validator(mode="after")
    def _reclaim_before_stuck(self):
        # "Stuck" means nobody will finish it: an event a live worker may still legitimately
        # hold (up to the reclaim time) must not be reported stuck.
        if self.MONITOR_RECLAIM_MINUTES > self.MONITOR_STUCK_MINUTES:
            raise ValueError(f"MONITOR_RECLAIM_MINUTES ({self.MONITOR_RECLAIM_MINUTES}) must not exceed "
                             f"MONITOR_STUCK_MINUTES ({self.MONITOR_STUCK_MINUTES}): an event its worker "
                             "may still hold would be reported stuck")
        return self

    @field_validator("DATABASE_URL", "DASHBOARD_DATABASE_URL")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        scheme = value.split("://", 1)[0].lower()
        if "://" not in value or not scheme.startswith(("postgres", "postgresql")):
            raise ValueError("must be a PostgreSQL URL such as postgresql://user:pass@host:5432/db")
        return value.strip()

    @field_validator("MONITOR_SCHEDULE")
    @classmethod
    def _schedule(cls, value: str) -> str:
        schedule_entries(value)
        return value

    @field_validator("MONITOR_SCHEDULE_TIMEZONE")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Berlin)") from None
        return value.strip()

    @field_validator("MONITOR_SMTP_URL")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        from core.mail import parse_smtp_url

        if value is None or value.strip() == "":
            return None
        parse_smtp_url(value)  # SmtpUrlError is a ValueError: reported without the URL itself
        return value.strip()

    @field_validator("MONITOR_EMAIL_FROM", "MONITOR_REPORT_EMAIL_TO", "MONITOR_ALERT_EMAIL_TO")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        from core.mail import parse_addresses

        if value is None or value.strip() == "":
            return None
        parse_addresses(value)
        return value.strip()

    @field_validator("MONITOR_DASHBOARD_URL")
    @classmethod
    def _dashboard_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL such as https://monitor.example.org")
        return value.strip().rstrip("/")

    @field_validator("STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "MONITOR_PASSWORD_HASH",
                     "MONITOR_ALERT_WEBHOOK_SECRET")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        return value.strip()

    @field_validator("STRIPE_API_BASE")
    @classmethod
    def _live_key_only_to_stripe(cls, value: str | None, info: ValidationInfo) -> str | None:
        problem = live_key_destination_problem(info.data.get("STRIPE_API_KEY"), value)
        if problem:
            raise ValueError(problem)
        return value


STRIPE_API_HOST = "api.stripe.com"
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


def live_key_destination_problem(api_key: str | None, api_base: str | None) -> str | None:
    """Why a live key may not be sent to ``api_base``, or None.

    A live key moves real money; it goes only over https to Stripe's own API host, never to
    a test server, a proxy or a typo's host (unset ``api_base`` means Stripe itself).
    """
    if not api_key or not api_key.strip().startswith(LIVE_KEY_PREFIXES) or not api_base:
        return None
    try:
        parts = urlsplit(api_base.strip())
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (parts is None or parts.scheme != "https" or parts.hostname != STRIPE_API_HOST
            or parts.username is not None or port not in (None, 443)):
        return (f"a live Stripe key ({api_key.strip()[:8]}...) is only sent over https to "
                f"{STRIPE_API_HOST}, not to {api_base.strip()!r}; unset STRIPE_API_BASE or use a test key")
    return None


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'10.0.0.0/8, 192.168.1.5, ::1' -> networks (an address is a network of one), or
    ValueError naming the entry that is neither."""
    networks = []
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"entry {entry!r} is neither an address (10.0.0.2, ::1) nor a network "
                             "(10.0.0.0/8, fd00::/8)") from None
    return tuple(networks)


def parse_allowed_emails(text: str) -> frozenset[str]:
    """'a@x.org, @example.com' -> {'a@x.org', '@example.com'} (lower case), or ValueError
    naming the entry that is neither an address nor an @domain."""
    entries = set()
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        local, at, domain = entry.rpartition("@")
        if (not at or not domain or "." not in domain.strip(".") or any(c.isspace() for c in entry)
                or "@" in local or domain.startswith(".") or domain.endswith(".")):
            raise ValueError(f"entry {raw.strip()!r} is neither an address (name@example.com) "
                             "nor a domain (@example.com)")
        entries.add(entry)
    if not entries:
        raise ValueError("lists no address or @domain")
    return frozenset(entries)


_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$")


def sweep_event_types(text: str) -> list[str]:
    """'a.b,c.*' -> ['a.b', 'c.*'], raising ValueError for an entry Stripe would not take
    (a wildcard anywhere but at the end, a blank list)."""
    types = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not types:
        raise ValueError("lists no event type; e.g. 'checkout.session.completed,checkout.session.expired'")
    for name in types:
        if not _EVENT_TYPE.match(name):
            raise ValueError(f"{name!r} is not an event type such as 'checkout.session.completed' "
                             "or a group such as 'checkout.session.*'")
    return types


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def schedule_entries(text: str) -> dict[str, str]:
    """'job=cron;job=cron' -> {job: cron}, raising ValueError naming the bad entry.

    The weekday field keeps crontab's meaning (0 and 7 = Sunday, ranges and steps counted
    from Sunday) and is returned as a list of day names, because the scheduling library
    counts its numbers, ranges and steps from Monday.
    """
    from apscheduler.triggers.cron import CronTrigger

    entries: dict[str, str] = {}
    for raw in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, expression = (piece.strip() for piece in raw.partition("="))
        if not sep or not name or not expression:
            raise ValueError(f"entry {raw!r} is not 'job=minute hour day month weekday'")
        if name in entries:
            raise ValueError(f"job {name!r} is listed twice")
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(f"{name}: {expression!r} needs 5 fields (minute hour day month weekday), "
                             f"not {len(fields)}")
        try:
            fields[4] = _crontab_weekdays(fields[4])
            expression = " ".join(fields)
            CronTrigger.from_crontab(expression, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        entries[name] = expression
    return entries


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field ('1-5', '0,6', '*/2', 'mon-fri', '5-7') as day names, or '*'."""
    days: set[int] = set()
    for part in field.lower().split(","):
        span, slash, step_text = part.partition("/")
        if slash and (not step_text.isdigit() or int(step_text) == 0):
            raise ValueError(f"weekday step in {part!r} is not a positive whole number")
        step = int(step_text) if slash else 1
        if span == "*":
            first, last = 0, 6
        else:
            start, dash, end = span.partition("-")
            first = _crontab_day(start)
            last = _crontab_day(end, range_end=True) if dash else (6 if slash else first)
            if last < first:
                raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_WEEKDAY_NAMES[day] for day in sorted(days))


def _crontab_day(text: str, *, range_end: bool = False) -> int:
    """0-6 from Sunday; 7 for '7', and for 'sun' closing a range ('fri-sun')."""
    text = text.strip()
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _WEEKDAY_NAMES:
        day = _WEEKDAY_NAMES.index(text)
        return 7 if range_end and day == 0 else day
    raise ValueError(f"weekday {text!r} is not 0-7 or a day name (sun, mon, ...)")


def get_settings(**overrides) -> Settings:
    """Read the settings from the environment now, raising ConfigError on a bad value.

    Settings depend only on the environment (and the user, for the default data folder), so
    the validated object is kept per (environment, user, overrides): a page run asks for them
    a dozen times, and validating them costs about 10 ms each time. A changed variable is a new
    key, so the answer is always the environment's as it is now; a bad value raises every time
    (an exception is not kept). The object is frozen, so no caller can change what the next
    one gets.
    """
    user = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        return _settings_for(tuple(sorted(os.environ.items())), user, tuple(sorted(overrides.items())))
    except TypeError:  # an unhashable override: build it afresh
        return _validated(overrides)


@functools.lru_cache(maxsize=32)
def _settings_for(environment: tuple, user: int | None, overrides: tuple) -> Settings:
    return _validated(dict(overrides))


def _validated(overrides: dict) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigError(f"{name}: {first['msg']}") from None


def describe_settings() -> list[tuple[str, str, str]]:
    """(name, default, help) for every setting, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "per-user data folder"
        elif field.default is None:
            default = "unset"
        else:
            default = str(field.default)
        rows.append((name, default, field.description or ""))
    return rows
