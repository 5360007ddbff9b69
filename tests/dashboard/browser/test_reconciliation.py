"""In Chromium, on the demo: Run now on the Reconciliation page runs a reconciliation against
the demo's local Stripe server and the report appears."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from devharness.browser import (
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
from tests.support.demo import local_stripe_process

pytestmark = pytest.mark.browser

PASSWORD = "reconcile in the browser"


def test_run_now_on_the_demo_shows_the_report(db, demo):
    with local_stripe_process(demo) as stripe_env, \
            streamlit_server(env={**password_env(PASSWORD), **stripe_env}) as server, \
            chromium_page() as page:
        page.goto(server.url)
        log_in(page, PASSWORD)
        open_page(page, "Reconciliation")
        assert page.get_by_text("No reconciliation has run yet").is_visible(), server.log()
        assert page.get_by_text("nothing has been checked yet").is_visible()
        assert not page.get_by_text("Nothing needs a person").count()

        page.get_by_role("button", name="Run now").click()
        page.get_by_text(re.compile(r"Run #\d+ finished")).wait_for(timeout=120_000)
        wait_for_script(page)

        assert not exception_texts(page), server.log()
        assert page.get_by_text("Items need a person").is_visible()
        with db.connect() as conn:
            run = conn.execute(sa.text("SELECT * FROM reconciliation_runs")).mappings().one()
        assert run["trigger"] == "dashboard" and run["status"] == "completed"
        # The run is the last run: its five numbers are shown once, at the top of the page.
        tiles = page.locator('[data-testid="stMetric"]')
        assert wait_for_count(page, '[data-testid="stMetric"]', 5) == 5
        shown = tiles.filter(has_text="Auto-fixed").first.inner_text()
        assert f"{run['auto_fixed_count']:,}" in shown
        assert page.get_by_text(f"Run #{run['id']}", exact=False).first.is_visible()
        assert wait_for_count(page, PLOTLY_SELECTOR, 1) >= 1
        assert page.get_by_role("heading", name="Review queue").is_visible()
