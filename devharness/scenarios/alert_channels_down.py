"""Alert channels down during an incident, with two ``watch`` processes running: the alert
webhook answering 503, or Slack answering 503 while the mail server is stopped; then the
channels come back and every notification must arrive, once."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter

import sqlalchemy as sa

from core.sql import load_package
from devharness.scenarios.steps import ScenarioResult, scratch_engine, wait_for_watchers, wait_until, watch_processes

SQL = load_package("devharness.scenarios", "steps.sql", "alert_channels_down.sql")


def _fail_incident(engine: sa.Engine, prefix: str, alerts: int) -> list[str]:
    """An incident: ``alerts`` checkout events failing, each of its own type (one alert each,
    named ``..._incident_N``); their ids."""
    ids = []
    with engine.begin() as conn:
        for i in range(alerts):
            ids.append(f"{prefix}{i}")
            SQL.execute(conn, "fail_checkout_event", id=ids[-1], type=f"checkout.session.incident_{i}")
    return ids


def _alert_key(text: str) -> str | None:
    """The incident number of an alert message (its event type ``..._incident_N``)."""
    found = re.search(r"incident_(\d+)", text)
    return found.group(1) if found else None


def alert_webhook_down_during_incident(database_url: str, *, alerts: int = 5, watchers: int = 2,
                                       down_s: float = 5.0, deadline_s: float = 60) -> ScenarioResult:
    """An incident (``alerts`` failed checkout event types: one alert each) while the alert
    webhook answers 503 for ``down_s``, with ``watchers`` watch processes running. Each alert
    must be recorded at once, its firing notification delivered once when the channel is back,
    and the resolved one (after the events are fixed) once too."""
    from devharness.http_sink import HttpSink

    engine = scratch_engine(database_url)
    env = {"MONITOR_ALERT_WEBHOOK_URL": None, "MONITOR_ALERT_INTERVAL_S": "1"}
    prefix = f"evt_incident_{uuid.uuid4().hex[:8]}_"
    with HttpSink(status=503) as sink:
        env["MONITOR_ALERT_WEBHOOK_URL"] = sink.url
        processes = watch_processes(database_url, watchers, extra_env=env)
        try:
            wait_for_watchers(engine, processes)
            ids = _fail_incident(engine, prefix, alerts)
            # The alerts are recorded and their notifications tried (and failed) while it is down.
            tried = wait_until(lambda: sink.attempts >= alerts, 30)
            time.sleep(down_s)
            states_down = {f"{r['kind']}/{r['status']}": r["n"] for r in SQL.all(engine, "alert_notification_states")}
            attempts_down = sink.attempts
            sink.status = 200  # the channel is back
            back = time.monotonic()
            wait_until(lambda: len({r.json()["alert_id"] for r in sink.received}) >= alerts, deadline_s, pause_s=0.1)
            recover_s = time.monotonic() - back
            with engine.begin() as conn:
                SQL.execute(conn, "complete_events", ids=ids)
            wait_until(lambda: len(sink.received) >= 2 * alerts, deadline_s, pause_s=0.1)
            time.sleep(3.0)  # anything sent twice would arrive now
        finally:
            exits = [process.stop() for process in processes]
            for process in processes:
                process.close()
    bodies = [r.json() for r in sink.received]
    sent = Counter((b["alert_id"], b["status"]) for b in bodies)
    firing = {a for a, status in sent if status == "firing"}
    resolved = {a for a, status in sent if status == "resolved"}
    states = {f"{r['kind']}/{r['status']}": r["n"] for r in SQL.all(engine, "alert_notification_states")}
    engine.dispose()
    return ScenarioResult(
        f"alert webhook answering 503 for {down_s:g} s during an incident of {alerts} alerts, {watchers} watch processes",
        before=2 * alerts, after=len(firing) + len(resolved),
        lost=2 * alerts - len(firing) - len(resolved),
        duplicated=sum(n - 1 for n in sent.values()), stuck=sum(n for k, n in states.items() if not k.endswith("/sent")),
        recover_s=recover_s if len(firing) == alerts else None,
        detail={"tried_while_down": tried, "attempts_while_down": attempts_down, "while_down": states_down,
                "firing_delivered": len(firing), "resolved_delivered": len(resolved), "watch_exits": exits})


def slack_and_email_down_during_incident(database_url: str, *, alerts: int = 3, watchers: int = 2,
                                         down_s: float = 5.0, deadline_s: float = 60) -> ScenarioResult:
    """An incident (``alerts`` failed checkout event types) while both people-facing channels
    are down: Slack's incoming webhook (a real HTTP server on 127.0.0.1 standing in for it)
    answers 503, and the mail server (aiosmtpd) is stopped, so connections are refused. Then
    both come back (the mail server started again on the same port). Every alert must be
    recorded at once, and each firing and each resolved notification delivered once on each
    channel, with ``watchers`` watch processes running."""
    from email.message import EmailMessage

    from devharness.http_sink import HttpSink
    from devharness.smtp import SmtpServer

    engine = scratch_engine(database_url)
    prefix = f"evt_channels_{uuid.uuid4().hex[:8]}_"
    mail_up = SmtpServer()
    mail_up.__enter__()
    port = mail_up.port
    mail_up.__exit__(None, None, None)  # the mail server stops: connections refused from now on
    mail_back: SmtpServer | None = None
    with HttpSink(status=503) as slack:
        env = {"MONITOR_ALERT_WEBHOOK_URL": None, "MONITOR_ALERT_SLACK_WEBHOOK_URL": slack.url,
               "MONITOR_SMTP_URL": f"smtp://127.0.0.1:{port}", "MONITOR_EMAIL_FROM": "Monitor <monitor@example.org>",
               "MONITOR_ALERT_EMAIL_TO": "ops@example.org", "MONITOR_ALERT_INTERVAL_S": "1"}
        processes = watch_processes(database_url, watchers, extra_env=env)

        def failed_on(channel: str) -> int:
            return sum(r["n"] for r in SQL.all(engine, "alert_channel_states")
                       if r["channel"] == channel and r["status"] == "failed")

        def mail_messages() -> list[EmailMessage]:
            return mail_back.messages if mail_back is not None else []

        other: Counter = Counter()  # messages of other rules (e.g. failure_rate, once 20 events failed)

        def delivered() -> dict[tuple[str, str, str], int]:
            """The incident's messages received, by (channel, alert, firing/resolved)."""
            sent: Counter = Counter()
            other.clear()
            texts = [("slack", r.json().get("text", "")) for r in slack.received]
            texts += [("email", str(m["Subject"])) for m in mail_messages()]
            for channel, text in texts:
                key = _alert_key(text)
                if key is None:
                    other[channel] += 1
                else:
                    sent[(channel, key, "resolved" if text.startswith("[RESOLVED]") else "firing")] += 1
            return sent

        try:
            wait_for_watchers(engine, processes)
            ids = _fail_incident(engine, prefix, alerts)
            # Each claim tries a send 3 times with backoff, one notification after another:
            # twenty alerts take a while to have all failed once.
            tried = wait_until(lambda: failed_on("slack") >= alerts and failed_on("email") >= alerts,
                               max(30.0, deadline_s))
            time.sleep(down_s)
            states_down = {f"{r['channel']}/{r['kind']}/{r['status']}": r["n"]
                           for r in SQL.all(engine, "alert_channel_states")}
            slack_attempts_down = slack.attempts
            slack.status = 200  # both back
            mail_back = SmtpServer(port=port)
            mail_back.__enter__()
            back = time.monotonic()

            def firing_everywhere() -> bool:
                keys = {(channel, key) for channel, key, status in delivered() if status == "firing"}
                return len(keys) >= 2 * alerts
            wait_until(firing_everywhere, deadline_s, pause_s=0.1)
            recover_s = time.monotonic() - back
            with engine.begin() as conn:
                SQL.execute(conn, "complete_events", ids=ids)
            wait_until(lambda: sum(delivered().values()) >= 4 * alerts, deadline_s, pause_s=0.1)
            time.sleep(3.0)  # anything sent twice would arrive now
        finally:
            exits = [process.stop() for process in processes]
            for process in processes:
                process.close()
            sent = delivered()
            if mail_back is not None:
                mail_back.__exit__(None, None, None)
    states = {f"{r['channel']}/{r['kind']}/{r['status']}": r["n"] for r in SQL.all(engine, "alert_channel_states")}
    engine.dispose()
    expected = 4 * alerts  # firing + resolved, on two channels
    distinct = len(sent)
    firing = {(channel, key) for channel, key, status in sent if status == "firing"}
    return ScenarioResult(
        f"Slack answering 503 and the mail server stopped for {down_s:g} s during an incident of {alerts} alerts, "
        f"{watchers} watch processes",
        before=expected, after=distinct, lost=expected - distinct, duplicated=sum(n - 1 for n in sent.values()),
        stuck=sum(n for k, n in states.items() if not k.endswith("/sent")),
        recover_s=recover_s if len(firing) == 2 * alerts else None,
        detail={"tried_while_down": tried, "while_down": states_down, "slack_attempts_while_down": slack_attempts_down,
                "slack_delivered": sum(n for (channel, _, _), n in sent.items() if channel == "slack"),
                "email_delivered": sum(n for (channel, _, _), n in sent.items() if channel == "email"),
                "other_alerts_messages": dict(other), "watch_exits": exits})
