"""How long the dashboard takes in a real browser: from a click to the page's script finishing
and every chart drawn, as an administrator waits for it.

    python bench/browser_pages.py                        # 10k events, a throwaway database
    python bench/browser_pages.py --events 100000
    python bench/browser_pages.py --database-url URL     # a database loaded before (e.g. 10M)

The dashboard runs under ``streamlit run`` (login off, loopback) and Debian's Chromium drives
it through Playwright. Printed, in milliseconds, median of ``--rounds`` rounds:

- ``first visit``: from opening the dashboard's URL right after the server started to the
  Overview drawn: what the first administrator after a restart waits for, in a new browser
  (nothing cached) and in a returning one (a browser profile that opened the dashboard before,
  so Streamlit's and Plotly's scripts come from its cache);
- for each page, ``cold``: a click on its entry in the navigation right after "Refresh now"
  emptied the query cache, and ``warm``: the same click again (cached results);
- for each window of the Overview, the click on it in the sidebar (cold as above, and warm).

"Drawn" is the app idle and connected after the run the click caused, and every Plotly
chart on the page with its SVG in place. The time is taken on the page's own clock, from the
click event to the end of the last run it caused or the last change to a chart, whichever is
later (``devharness.browser.last_action_ms``): not the harness's polling and its wait for the
app to settle, which come after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from devharness import ThrowawayDatabase, events_held, patched_env
from devharness.browser import PLOTLY_SELECTOR, chromium_page, last_action_ms, streamlit_server, wait_for_script
from devharness.database import load_demo_history

PAGES = ["Overview", "Events", "Errors", "Funnel", "Alerts", "Reconciliation", "Health"]
WINDOWS = ["24h", "7d", "30d"]
DAYS = 30


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="webhook events in all (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default %(default)s)")
    parser.add_argument("--database-url", metavar="URL",
                        help="measure on this migrated, loaded database as it is (no load, no drop)")
    return parser.parse_args(argv)


def wait_drawn(page) -> None:
    """The run the last action caused has finished and every chart has its SVG."""
    wait_for_script(page, timeout_ms=120_000)
    page.wait_for_function(
        f"""() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
                      .every(chart => chart.querySelector('{PLOTLY_SELECTOR} .main-svg'))""",
        timeout=120_000)


def timed_click(page, locator) -> float:
    locator.click()
    wait_drawn(page)
    return last_action_ms(page)


def nav(page, title: str):
    return page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True)


def window_button(page, window: str):
    return page.locator('[data-testid="stSidebar"]').get_by_text(window, exact=True)


def refresh(page) -> None:
    """Empty the query cache through the sidebar's "Refresh now" (a run of its own)."""
    page.get_by_role("button", name="Refresh now").click()
    wait_drawn(page)


def first_visit_ms(profile: Path | None = None) -> float:
    """From opening the dashboard's URL, right after its server started, to the Overview drawn;
    in a new browser, or in one whose ``profile`` (its cache) has seen the dashboard before."""
    with streamlit_server(env={"MONITOR_AUTH": "none"}) as server, chromium_page(profile=profile) as page:
        page.goto(server.url)
        wait_drawn(page)
        return last_action_ms(page, since_navigation=True)


def returning_visits_ms(rounds: int) -> list[float]:
    """First visits after a restart by a browser that opened the dashboard before it (its
    cache holds Streamlit's and Plotly's scripts), as an administrator's own browser does."""
    with tempfile.TemporaryDirectory(prefix="browser-profile-") as folder:
        first_visit_ms(Path(folder))  # the visit that fills the cache
        return [first_visit_ms(Path(folder)) for _ in range(rounds)]


def one_round(page) -> dict[tuple[str, str], float]:
    figures: dict[tuple[str, str], float] = {}
    for title in PAGES:
        other = PAGES[-1] if title == PAGES[0] else PAGES[0]
        timed_click(page, nav(page, other))  # start elsewhere, so the click is a page change
        refresh(page)
        figures[(title, "cold")] = timed_click(page, nav(page, title))
        timed_click(page, nav(page, other))
        figures[(title, "warm")] = timed_click(page, nav(page, title))
    timed_click(page, nav(page, "Overview"))
    for window in WINDOWS:
        other = WINDOWS[(WINDOWS.index(window) + 1) % len(WINDOWS)]
        timed_click(page, window_button(page, other))
        refresh(page)
        figures[(f"Overview {window}", "cold")] = timed_click(page, window_button(page, window))
        timed_click(page, window_button(page, other))
        figures[(f"Overview {window}", "warm")] = timed_click(page, window_button(page, window))
    return figures


def bench(args, url: str, *, load_first: bool) -> None:
    if load_first:
        print(f"loaded {args.events:,} events over {DAYS} days in {load_demo_history(url, events=args.events, days=DAYS):.1f} s")
    else:
        print(f"{events_held(url):,} events in the given database (nothing loaded)")
    first = [first_visit_ms() for _ in range(args.rounds)]
    returning = returning_visits_ms(args.rounds)
    rounds = []
    with streamlit_server(env={"MONITOR_AUTH": "none"}) as server, chromium_page() as page:
        page.goto(server.url)
        wait_drawn(page)
        one_round(page)  # warm-up: imports, the server's first runs of every page
        rounds = [one_round(page) for _ in range(args.rounds)]
    print(f"first visit after the server started, new browser: {statistics.median(first):.0f} ms "
          f"(rounds: {', '.join(f'{v:.0f}' for v in first)})")
    print(f"first visit after the server started, returning browser: {statistics.median(returning):.0f} ms "
          f"(rounds: {', '.join(f'{v:.0f}' for v in returning)})")
    print(f"{'click':<22}{'cold ms':>10}{'warm ms':>10}")
    for name in [*PAGES, *(f"Overview {w}" for w in WINDOWS)]:
        cold = statistics.median(r[(name, "cold")] for r in rounds)
        warm = statistics.median(r[(name, "warm")] for r in rounds)
        print(f"{name:<22}{cold:>10.0f}{warm:>10.0f}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        if args.database_url:
            url, load_first = args.database_url, False
        else:
            url, load_first = stack.enter_context(ThrowawayDatabase(migrate=False)).url, True
        stack.enter_context(patched_env(DATABASE_URL=url, DASHBOARD_DATABASE_URL=None))
        bench(args, url, load_first=load_first)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
