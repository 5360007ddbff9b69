"""The report's HTML as a mail client shows it: Chromium with JavaScript off draws the
table-based bars at the widths the numbers give."""

from __future__ import annotations

import pytest

from jobs.health import report as health_report
from tests.support.browser import chromium_page
from tests.support.report_week import END, NOW, START, build_week

pytestmark = pytest.mark.browser


def test_bars_render_without_scripts_or_stylesheets(db, tmp_path):
    build_week(db)
    report = health_report.build(db, start=START, end=END, now=NOW, dashboard_url="https://monitor.example.org")
    path = tmp_path / "report.html"
    path.write_text(report.html, encoding="utf-8")
    with chromium_page(width=720, height=900) as page:
        page.context.set_offline(True)  # nothing to fetch: no images, fonts or scripts
        page.goto(path.as_uri())
        assert page.evaluate("document.scripts.length") == 0
        assert page.evaluate("document.styleSheets.length") == 0  # every style is inline
        # The auto-fixed share (9 of 10) is a green cell of 90 % of its bar.
        share = page.locator('td[bgcolor="#079455"][width="90%"]').first
        bar = share.locator("xpath=ancestor::table[1]")
        ratio = share.bounding_box()["width"] / bar.bounding_box()["width"]
        assert ratio == pytest.approx(0.90, abs=0.02)
        # One row per day of the week, and the first attention item links to its page.
        assert page.get_by_text("Mon 16 Nov").count() == 1 and page.get_by_text("Sun 22 Nov").count() == 1
        assert page.get_by_role("link", name="Open →").first.get_attribute("href") == \
            "https://monitor.example.org/errors"
