"""The real dashboard in Chromium: log in with a password, visit every page, see charts and no
exception box."""

from datetime import datetime, timezone

import pytest

from devharness.browser import (
    EXCEPTION_SELECTOR,
    PLOTLY_SELECTOR,
    exception_texts,
    log_in,
    open_page,
    password_env,
    streamlit_server,
    wait_for_count,
    wait_for_script,
)
from tests.support.browser import chromium_page
from tests.support.dashboard_samples import add_sample_history

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
PAGES_WITH_CHARTS = {"Overview": 4, "Errors": 2, "Funnel": 2}
OTHER_PAGES = ["Events", "Reconciliation", "Health"]


@pytest.fixture
def sample_db(db):
    with db.begin() as conn:
        add_sample_history(conn, datetime.now(timezone.utc), days=30, per_day=12)
    return db


def test_login_then_every_page_renders_without_exception(sample_db):
    with streamlit_server(env=password_env(PASSWORD)) as server, chromium_page() as page:
        page.goto(server.url)
        wait_for_script(page)
        assert page.locator(PLOTLY_SELECTOR).count() == 0, "charts visible before logging in"

        log_in(page, "wrong password")
        page.get_by_text("Wrong password.").wait_for()

        log_in(page, PASSWORD)
        page.get_by_role("heading", name="Overview").wait_for()

        for title, charts in PAGES_WITH_CHARTS.items():
            open_page(page, title)
            assert wait_for_count(page, PLOTLY_SELECTOR, charts) >= charts, title
            assert not exception_texts(page), f"{title}: {exception_texts(page)}"

        open_page(page, "Events")
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Event detail").click()
        page.get_by_role("option").first.click()
        wait_for_script(page)
        link = page.get_by_role("link", name="Open in the Stripe Dashboard")
        assert link.get_attribute("href").startswith("https://dashboard.stripe.com/test/events/evt_")
        assert not exception_texts(page)

        for title in OTHER_PAGES:
            open_page(page, title)
            page.get_by_role("heading", name=title).first.wait_for()
            assert page.locator(EXCEPTION_SELECTOR).count() == 0, f"{title}: {exception_texts(page)}"

        page.get_by_role("button", name="Log out").click()
        wait_for_script(page)
        page.get_by_label("Password", exact=True).wait_for()
