"""Regenerate docs/screenshot-overview.png: the overview page on fresh demo data.

    python scripts/screenshot.py                      # writes docs/screenshot-overview.png
    python scripts/screenshot.py --window 7d --out /tmp/overview-7d.png
    python scripts/screenshot.py --all                # every page: docs/screenshot-<page>.png

Loads demo history ending now (``python -m jobs demo-data``) into a throwaway database (an
embedded PostgreSQL in a temporary folder, or a scratch database on DATABASE_URL's server,
dropped afterwards), starts the dashboard with ``streamlit run`` on a free loopback port behind
a one-off password, logs in and photographs the page with Debian's Chromium (/usr/bin/chromium).
Needs the project installed (``make install``): it imports the ``devharness`` package.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from devharness import ThrowawayDatabase, patched_env
from devharness.browser import (
    CHROMIUM,
    PLOTLY_SELECTOR,
    chromium_page,
    exception_texts,
    log_in,
    open_page,
    password_env,
    streamlit_server,
    wait_for_count,
    wait_for_script,
)

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot-overview.png")
    parser.add_argument("--window", choices=["24h", "7d", "30d"], default="7d")
    parser.add_argument("--events-per-day", type=int, default=800)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--all", action="store_true",
                        help="photograph every page into docs/screenshot-<page>.png (--out is ignored)")
    return parser.parse_args(argv)


PAGES = ["Overview", "Events", "Errors", "Funnel", "Alerts", "Reconciliation", "Health"]


def main(argv=None) -> int:
    args = parse_args(argv)
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    # The environment is the caller's again afterwards (main() may be called from Python).
    with ThrowawayDatabase() as database, \
            patched_env(DATABASE_URL=database.url, DASHBOARD_DATABASE_URL=None):
        subprocess.run([sys.executable, "-m", "jobs", "demo-data", "--events-per-day", str(args.events_per_day),
                        "--no-stripe-state"], cwd=REPO, env=os.environ, check=True, stdout=subprocess.DEVNULL)
        shoot(args)
    return 0


def shoot(args) -> None:
    password = secrets.token_urlsafe(16)
    with streamlit_server(env=password_env(password)) as server, \
            chromium_page(width=args.width, height=args.height) as page:
        page.goto(server.url)
        log_in(page, password)
        page.locator('[data-testid="stSidebar"]').get_by_text(args.window, exact=True).click()
        wait_for_script(page)
        shots = [(title, REPO / "docs" / f"screenshot-{title.lower()}.png") for title in PAGES] \
            if args.all else [("Overview", args.out)]
        for title, out in shots:
            if title != "Overview" or args.all:
                open_page(page, title)
            if title == "Overview":
                wait_for_count(page, PLOTLY_SELECTOR, 4)
            page.wait_for_timeout(1500)  # let Plotly finish its transitions
            if exception_texts(page):
                raise SystemExit(f"the {title} page shows an exception: {exception_texts(page)}")
            out.parent.mkdir(parents=True, exist_ok=True)
            # Top of the page; the whole page would be too tall to read.
            page.screenshot(path=str(out), full_page=False)
            print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
