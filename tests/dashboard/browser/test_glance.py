"""In Chromium: the Overview's chart bucket follows the window chosen in the sidebar."""

from __future__ import annotations

import pytest

from devharness.browser import exception_texts, log_in, password_env, streamlit_server, wait_for_script
from tests.support.browser import chromium_page

pytestmark = pytest.mark.browser

PASSWORD = "at a glance"


def volume_bars(page) -> int:
    """Bars of the first status in the volume chart (one per bucket that had events)."""
    chart = page.locator(".js-plotly-plot", has_text="Events per")
    return chart.locator("g.trace.bars").first.locator("g.point").count()


def test_30d_after_7d_per_hour_shows_day_buckets(month_of_events):
    with streamlit_server(env=password_env(PASSWORD)) as server, chromium_page() as page:
        page.goto(server.url)
        log_in(page, PASSWORD)
        page.get_by_role("heading", name="Overview").wait_for()
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("7d", exact=True).click()
        wait_for_script(page)
        page.locator('[data-testid="stMain"]').get_by_text("per hour", exact=True).click()
        wait_for_script(page)
        page.get_by_text("Events per hour by status").wait_for()
        assert volume_bars(page) >= 28, server.log()  # one bar per 6-hourly event

        sidebar.get_by_text("30d", exact=True).click()
        wait_for_script(page)
        page.get_by_text("Events per day by status").wait_for()
        assert 28 <= volume_bars(page) <= 31  # one bar per day, not 720 hourly ones
        assert not page.get_by_text("Events per hour by status").count()
        # And 720 hourly bars cannot be asked for: 30 days are shown per day only.
        assert not page.locator('[data-testid="stMain"]').get_by_text("per hour", exact=True).count()
        assert not exception_texts(page), server.log()
