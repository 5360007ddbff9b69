"""In Chromium, on the demo: every page at every window, and the drill-downs one click away
(an event's detail, an error group, a review item, a job's runs), read as a person expects at
a desktop and at a small laptop viewport: no table cell or metric says "None", "nan", "NaT" or
"null", no metric label or value is cut off, and the Overview's "this hour so far" label keeps
clear of the chart's legend. And a link opened while logged out lands, once the password is
given, on the page and filters it names, not on the Overview.

Tables (Streamlit's data grid) are drawn on a canvas, so their cells are not in the page's
text: the page gets a hook, before any of its scripts run, that records every string drawn on
a canvas, which is exactly what a person sees in the cells and headers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from devharness.browser import (
    PLOTLY_SELECTOR,
    REPO,
    exception_texts,
    log_in,
    open_page,
    password_env,
    streamlit_server,
    wait_for_count,
    wait_for_script,
)
from jobs.admin import demo_data
from tests.support.browser import chromium_page
from tests.support.demo import local_stripe_process
from tests.support.factories import add_event

pytestmark = pytest.mark.browser

LOGIN_OFF = {"MONITOR_AUTH": "none"}
PAGES = ["Overview", "Events", "Errors", "Funnel", "Alerts", "Reconciliation", "Health"]
WINDOWS = ["24h", "7d", "30d"]
# A desktop browser window, then a small laptop: every page at every window on the narrow
# one (where labels are cut first), the default window on the wide one (its own breakpoints).
VIEWPORTS = {(1280, 800): ["24h"], (1024, 768): WINDOWS}
# What pandas, Python and JavaScript write for a missing value.
MISSING_WORDS = ("None", "nan", "NaN", "NaT", "null", "<NA>", "undefined")
MISSING_WORD = re.compile(r"(?<![\w-])(None|nan|NaN|NaT|null|<NA>|undefined)(?![\w-])")

CANVAS_TEXT_HOOK = """
(() => {
  const drawn = window.__drawnTexts = new Set();
  for (const context of [window.CanvasRenderingContext2D, window.OffscreenCanvasRenderingContext2D]) {
    if (!context) continue;
    const fillText = context.prototype.fillText;
    context.prototype.fillText = function (text, ...rest) {
      drawn.add(String(text));
      return fillText.call(this, text, ...rest);
    };
  }
})();
"""

# Each metric's label and value: cut off (an element narrower than its text, or an ellipsis),
# or reading like a missing value; and the sidebar's links cut off. Metrics hidden (width 0)
# are not looked at.
METRIC_PROBLEMS = r"""
() => {
  const problems = [];
  const missing = /(?<![\w-])(None|nan|NaN|NaT|null|<NA>|undefined)(?![\w-])/;
  for (const metric of document.querySelectorAll('[data-testid="stMetric"]')) {
    if (!metric.offsetWidth) continue;
    const label = metric.querySelector('[data-testid="stMetricLabel"]');
    const name = (label ? label.innerText : metric.innerText).trim().replace(/\s+/g, ' ');
    for (const part of ['stMetricLabel', 'stMetricValue']) {
      const element = metric.querySelector(`[data-testid="${part}"]`);
      if (!element) continue;
      const cut = [element, ...element.querySelectorAll('*')].find(
        (e) => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1);
      if (cut || element.innerText.includes('\u2026')) {
        problems.push(`metric "${name}": ${part} cut off ("${element.innerText.trim()}", ` +
                      `${cut ? cut.scrollWidth + 'px in ' + cut.clientWidth + 'px' : 'ellipsis'})`);
      }
    }
    if (missing.test(metric.innerText)) {
      problems.push(`metric "${name}" reads "${metric.innerText.trim().replace(/\s+/g, ' ')}"`);
    }
  }
  // The status verdict's reasons in the sidebar: shortened with an ellipsis, never cut mid-word.
  for (const link of document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stPageLink"]')) {
    const cut = [link, ...link.querySelectorAll('*')].find(
      (e) => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1);
    if (cut) problems.push(`sidebar link cut off ("${link.innerText.trim()}", ${cut.scrollWidth}px in ${cut.clientWidth}px)`);
  }
  return problems;
}
"""

# The volume chart's partial-bucket label and its legend, as drawn (page coordinates).
PARTIAL_LABEL_AND_LEGEND = """
() => {
  const chart = [...document.querySelectorAll('.js-plotly-plot')].find(
    (c) => (c.querySelector('.gtitle') || {}).textContent?.startsWith('Events per'));
  if (!chart) return null;
  const label = [...chart.querySelectorAll('g.annotation')].find((a) => a.textContent.includes('so far'));
  const legend = chart.querySelector('g.legend');
  const box = (e) => { if (!e) return null; const r = e.getBoundingClientRect();
                       return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  return {label: box(label), legend: box(legend)};
}
"""


def run_job(*args: str, env: dict[str, str]) -> None:
    """``python -m jobs ARGS`` against the test database, as cron would run it."""
    result = subprocess.run([sys.executable, "-m", "jobs", *args], cwd=REPO, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 3), f"jobs {' '.join(args)}: exit {result.returncode}\n{result.stderr}"


@pytest.fixture
def demo_with_history(db, tmp_path):
    """30 days of demo data, then what the schedule would have done on it: a reconciliation
    (review items), a sweep (missed events), a cleanup dry run, a health snapshot, the alert
    rules once and a weekly report. Yields the local Stripe server's settings."""
    state = tmp_path / "demo-stripe-state.json"
    demo_data.run(db, now=datetime.now(timezone.utc), days=30, events_per_day=60, seed=7,
                  stripe_state_path=state, trigger="cli")
    with local_stripe_process(state) as stripe_env:
        for job in (["reconcile"], ["sweep"], ["cleanup", "--dry-run"], ["health-snapshot"], ["watch", "--once"],
                    ["health-report", "--dry-run", "--output", str(tmp_path / "report.html")]):
            run_job(*job, env=stripe_env)
        yield stripe_env


def drill_downs(db) -> list[tuple[str, str]]:
    """(what, path) of the pages one click away from a list: a failed checkout event's detail,
    the busiest error groups' events, one review item of each kind, a few jobs' runs."""
    with db.connect() as conn:
        event = conn.execute(sa.text(
            "SELECT stripe_event_id FROM webhook_events WHERE processing_status = 'failed' "
            "AND event_type LIKE 'checkout.session.%' ORDER BY attempts DESC, created_at DESC LIMIT 1")).scalar_one()
        completed = conn.execute(sa.text(
            "SELECT stripe_event_id FROM webhook_events WHERE processing_status = 'completed' "
            "AND event_type = 'checkout.session.completed' ORDER BY created_at DESC LIMIT 1")).scalar_one()
        groups = conn.execute(sa.text(
            "SELECT error_fingerprint FROM webhook_events WHERE processing_status = 'failed' "
            "AND error_fingerprint IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 2")).scalars().all()
        items = conn.execute(sa.text(
            "SELECT DISTINCT ON (kind) id, kind FROM reconciliation_items WHERE action = 'manual_review' "
            "AND resolved_at IS NULL ORDER BY kind, id")).all()
        jobs = conn.execute(sa.text("SELECT DISTINCT job FROM job_runs WHERE job IN ('reconcile', 'cleanup', 'watch') "
                                    "ORDER BY job")).scalars().all()
    from urllib.parse import urlencode

    found = [("event detail (failed)", f"/events?{urlencode({'q': event})}#detail"),
             ("event detail (completed checkout)", f"/events?{urlencode({'q': completed})}#detail")]
    found += [(f"error group {g[:40]}", f"/events?{urlencode({'group': g})}") for g in groups]
    found += [(f"review item {kind}", f"/reconciliation?item={item}") for item, kind in items]
    found += [(f"runs of {job}", f"/health?{urlencode({'job': job})}") for job in jobs]
    assert len(groups) >= 1 and len(items) >= 3 and "reconcile" in jobs  # the demo has them all
    return found


class Reader:
    """Looks at the page as it stands and keeps what a person would stumble over."""

    def __init__(self, page, log):
        self.page, self.log = page, log
        self.problems: list[str] = []
        self.drawn: set[str] = set()

    def start(self) -> None:
        self.page.evaluate("window.__drawnTexts.clear()")

    def settle(self, charts: int = 0) -> None:
        if charts:
            wait_for_count(self.page, PLOTLY_SELECTOR, charts, timeout_ms=15_000)
        # Open every expander: their tables and metrics are one click away too.
        for summary in self.page.query_selector_all('[data-testid="stExpander"] details:not([open]) > summary'):
            summary.click()
        self.page.wait_for_timeout(800)  # grids and charts draw after the script run

    def check(self, where: str) -> None:
        page = self.page
        self.problems += [f"{where}: exception {text[:200]}" for text in exception_texts(page)]
        self.problems += [f"{where}: {problem}" for problem in page.evaluate(METRIC_PROBLEMS)]
        drawn = set(page.evaluate("[...window.__drawnTexts]"))
        self.drawn |= drawn
        self.problems += [f"{where}: a table cell reads {text!r}" for text in sorted(drawn)
                          if text.strip() in MISSING_WORDS]
        shown = page.evaluate(PARTIAL_LABEL_AND_LEGEND)
        if shown and shown["label"] and shown["legend"]:
            a, b = shown["label"], shown["legend"]
            if a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]:
                self.problems.append(f"{where}: the partial bucket's label overlaps the legend ({a} / {b})")

    def visit(self, title: str, where: str) -> None:
        self.start()
        open_page(self.page, title)
        self.settle(charts={"Overview": 4, "Errors": 2}.get(title, 0))
        if title == "Overview":
            # The volume chart draws its partial bucket's label after the bars: on a busy
            # machine later than the settling pause. Its overlap with the legend is checked
            # once both are drawn (if they never are, the test's last assertion says so).
            try:
                self.page.wait_for_function(
                    f"() => {{ const shown = ({PARTIAL_LABEL_AND_LEGEND})(); return shown && shown.label && shown.legend; }}",
                    timeout=10_000)
            except PlaywrightTimeout:
                pass
        self.check(where)


def test_every_page_window_and_drill_down_reads_cleanly_at_two_viewports(db, demo_with_history):
    links = drill_downs(db)
    with streamlit_server(env={**LOGIN_OFF, **demo_with_history}) as server, \
            chromium_page(width=1280, height=800) as page:
        page.add_init_script(CANVAS_TEXT_HOOK)
        reader = Reader(page, server.log)
        page.goto(server.url)
        wait_for_script(page)
        sidebar = page.locator('[data-testid="stSidebar"]')
        partial_labels = 0
        for (width, height), windows in VIEWPORTS.items():
            page.set_viewport_size({"width": width, "height": height})
            for window in windows:
                sidebar.get_by_text(window, exact=True).click()
                wait_for_script(page)
                for title in PAGES:
                    reader.visit(title, f"{title} {window} {width}×{height}")
                    if title == "Overview":
                        shown = page.evaluate(PARTIAL_LABEL_AND_LEGEND)
                        partial_labels += bool(shown and shown["label"] and shown["legend"])
            for what, path in links if width < 1280 else []:  # the narrow viewport is the harder one
                page.goto(server.url + path.split("#")[0])
                wait_for_script(page)
                sidebar.get_by_text("30d", exact=True).click()  # the demo's month, whatever the item's age
                wait_for_script(page)
                reader.start()
                if path.endswith("#detail"):
                    page.locator('[data-testid="stSelectbox"]').filter(has_text="Event detail").click()
                    page.get_by_role("option").first.click()
                    wait_for_script(page)
                    page.get_by_role("link", name="Open in the Stripe Dashboard").wait_for()
                reader.settle()
                reader.check(f"{what} {width}×{height}")

    assert not reader.problems, "\n".join(reader.problems) + "\n" + server.log()[-2000:]
    # The hook saw the tables (their headers and cells), so it would have seen a "None" too:
    # empty cells are there, and read "–".
    assert {"Type", "Event id"} <= reader.drawn and "–" in reader.drawn, sorted(reader.drawn)[:50]
    assert partial_labels >= 2  # the label and the legend were both there to compare


@pytest.fixture
def one_stuck_event(db):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for minute in range(0, 6 * 60, 30):
            add_event(conn, created_at=now - timedelta(minutes=minute + 1), duration_ms=40)
        add_event(conn, created_at=now - timedelta(hours=2), status="processing", event_id="evt_stuck_deep_link")
    return db


PASSWORD = "deep link, then log in"


def test_a_link_opened_while_logged_out_lands_there_after_the_login(one_stuck_event):
    with streamlit_server(env=password_env(PASSWORD)) as server, chromium_page() as page:
        page.goto(f"{server.url}/events?view=stuck")
        wait_for_script(page)
        page.get_by_label("Password", exact=True).wait_for()
        assert not page.get_by_text("still processing").count()  # nothing shown before logging in

        log_in(page, "not the password")
        page.get_by_text("Wrong password.").wait_for()
        log_in(page, PASSWORD)

        page.get_by_role("heading", name="Events").wait_for()
        assert re.search(r"/events\?(.*&)?view=stuck", page.url), page.url
        page.get_by_text(re.compile(r"^1 event still processing after more than")).wait_for()
        # The navigation is there again, and Overview is one click away.
        open_page(page, "Overview")
        page.get_by_role("heading", name="Overview").wait_for()
        assert not exception_texts(page), server.log()
