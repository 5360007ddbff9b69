"""A local stand-in for PagerDuty's Events API v2 enqueue endpoint: an HttpSink that checks
every body against the v2 schema (``pagerduty_events_v2.schema.json``, written from
PagerDuty's documentation) and answers as PagerDuty does: 202 with the dedup_key for an
event it takes, 400 "invalid event" with the errors for one it refuses."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

from devharness.http_sink import HttpSink, Received

SCHEMA = json.loads((Path(__file__).with_name("pagerduty_events_v2.schema.json")).read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())


def schema_errors(body) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or 'event'}: {e.message}" for e in VALIDATOR.iter_errors(body)]


def judge(request: Received) -> tuple[int, bytes]:
    try:
        body = request.json()
    except ValueError:
        return 400, json.dumps({"status": "invalid event", "message": "Event object is invalid",
                                "errors": ["not JSON"]}).encode()
    errors = schema_errors(body)
    if request.method != "POST" or errors:
        return 400, json.dumps({"status": "invalid event", "message": "Event object is invalid",
                                "errors": errors or ["POST only"]}).encode()
    return 202, json.dumps({"status": "success", "message": "Event processed",
                            "dedup_key": body.get("dedup_key")}).encode()


def pagerduty_server(status: int = 202) -> HttpSink:
    """``with pagerduty_server() as pd:`` — events it took are ``pd.received``; point
    MONITOR_ALERT_PAGERDUTY_URL at ``pd.url``."""
    return HttpSink(status=status, judge=judge)
