"""Charts an operator reads at a glance, on the pages themselves (AppTest): the chart bucket
follows the window chosen in the sidebar."""

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from tests.apptest_support import login_off, open_dashboard  # noqa: F401 (fixture)
from tests.factories import add_event


@pytest.fixture
def month_of_events(db):
    """An event every 6 hours over the last 30 days."""
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for i in range(4 * 30):
            add_event(conn, created_at=now - timedelta(hours=6 * i, minutes=5), duration_ms=100)
    return db


def volume_chart(at) -> dict:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return next(s for s in specs if s["layout"]["title"]["text"].startswith("Events per"))


def test_the_bucket_follows_the_window(month_of_events, login_off):
    at = open_dashboard()
    at.sidebar.button_group(key="window_choice").set_value("7d").run()
    at.button_group(key="overview_bucket_last 7d").set_value("hour").run()
    assert volume_chart(at)["layout"]["title"]["text"] == "Events per hour by status"

    at.sidebar.button_group(key="window_choice").set_value("30d").run()
    assert not at.exception
    chart = volume_chart(at)
    assert chart["layout"]["title"]["text"] == "Events per day by status"  # not 720 hourly bars
    days = {pd.Timestamp(x).normalize() for x in chart["data"][0]["x"]}
    assert len(chart["data"][0]["x"]) == len(days) <= 31

