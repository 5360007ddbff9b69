"""Charts an operator reads at a glance, on the pages themselves (AppTest): the chart bucket
follows the window chosen in the sidebar."""

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from tests.support.apptest import open_dashboard


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



@pytest.fixture
def sample_history(db):
    from tests.support.dashboard_samples import add_sample_history

    with db.begin() as conn:
        add_sample_history(conn, datetime.now(timezone.utc))
    return db


# A metric's label is cut with "…" past the width of its tile (five tiles in a row on a laptop
# screen leave about this many characters); the help text says the rest.
MAX_METRIC_LABEL = 20


def test_metric_labels_are_short_enough_to_read_whole(sample_history, login_off):
    at = open_dashboard()
    at.sidebar.button_group(key="window_choice").set_value("7d").run()
    labels = {}
    for page in ["views/overview/page.py", "views/errors/page.py", "views/funnel/page.py", "views/reconciliation/page.py",
                 "views/health/page.py", "views/alerts/page.py"]:
        at.switch_page(page).run()
        assert not at.exception, at.exception
        labels.update({m.label: page for m in at.metric})
    assert "Paid, not completed" in labels and "Still failing" in labels  # the pages drew their tiles
    assert {label: page for label, page in labels.items() if len(label) > MAX_METRIC_LABEL} == {}
