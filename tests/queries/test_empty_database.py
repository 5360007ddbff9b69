"""Every dashboard query, whoever added it, runs on an empty database through the dashboard's
read-only engine: a fresh install shows empty states, not errors."""

import re
from datetime import datetime, timedelta, timezone

import pytest

from queries import QUERIES, fetch_df

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
# One plain value for each parameter name any query uses; a new name fails the test below
# until it is given a value here.
VALUES = {
    "start": NOW - timedelta(days=7),
    "end": NOW,
    "since": NOW - timedelta(days=7),
    "bucket": "hour",
    "stuck_before": NOW - timedelta(minutes=15),
    "stale_before": NOW - timedelta(days=7),
    "limit": 50,
    "offset": 0,
    "search": "'; drop table webhook_events; --",
    "statuses": ["failed", "completed"],
    "event_types": ["checkout.session.completed"],
    "stripe_event_id": "evt_missing",
    "run_id": 1,
    "item_id": 1,
    "job": "reconcile",
    "alert_id": 1,
    "now": NOW,
    "fingerprint": "TimeoutError: mailer timed out after <n> ms",
    "report_id": 1,
}
PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def parameters_of(sql: str) -> set[str]:
    return set(PARAMETER.findall(sql))


def test_every_parameter_name_has_a_value_here():
    missing = {name: sorted(parameters_of(q.sql) - set(VALUES)) for name, q in QUERIES.items()}
    assert {name: params for name, params in missing.items() if params} == {}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_runs_on_an_empty_database(dashboard_engine, name):
    params = {key: VALUES[key] for key in parameters_of(QUERIES[name].sql) if key in VALUES}
    frame = fetch_df(dashboard_engine, name, **params)
    assert list(frame.columns), f"{QUERIES[name].source}: returns no columns"
