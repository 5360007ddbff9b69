"""Regenerate docs/screenshot-health-report.png: the weekly health report's HTML, rendered by
Debian's Chromium with JavaScript off (as a mail client shows it), on fresh demo data.

    python scripts/report_screenshot.py                  # writes docs/screenshot-health-report.png
    python scripts/report_screenshot.py --out /tmp/report.png --html /tmp/report.html

Loads demo history ending now into a throwaway database (as scripts/screenshot.py does),
runs reconciliation, cleanup and a sweep for missed events against the local Stripe server
holding the demo's Checkout Sessions and events, evaluates the alert rules once, takes a
health snapshot, builds the report of the last 7 days with
``python -m jobs health-report --dry-run --output`` and photographs the file at a mail
client's width.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from devharness import ThrowawayDatabase
from devharness.browser import CHROMIUM, chromium_page
from local_stripe.server import LocalStripe
from local_stripe.store import StripeState

REPO = Path(__file__).resolve().parent.parent
DEMO_STRIPE_KEY = "sk_test_report_screenshot_0000000000"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot-health-report.png")
    parser.add_argument("--html", type=Path, help="also keep the report's HTML here")
    parser.add_argument("--events-per-day", type=int, default=800)
    parser.add_argument("--width", type=int, default=720)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="health-report-"))
    html_path = args.html or folder / "report.html"
    state = folder / "stripe-state.json"
    with ThrowawayDatabase() as database:
        env = {**os.environ, "DATABASE_URL": database.url, "MONITOR_DASHBOARD_URL": "https://monitor.example.org",
               "STRIPE_API_KEY": DEMO_STRIPE_KEY}
        env.pop("DASHBOARD_DATABASE_URL", None)
        jobs(env, ["demo-data", "--events-per-day", str(args.events_per_day), "--stripe-state", str(state)])
        with LocalStripe(StripeState.from_file(state), api_keys=[DEMO_STRIPE_KEY]) as stripe:
            env["STRIPE_API_BASE"] = stripe.url
            # These exit 3 when they leave something for a person: expected on demo data.
            jobs(env, ["reconcile"], ["cleanup"], ["sweep", "--lookback-hours", "168"], ["watch", "--once"],
                 ["health-snapshot"], allowed=(0, 3))
        jobs(env, ["health-report", "--dry-run", "--output", str(html_path)])
    shoot(html_path, args.out, width=args.width)
    print(f"wrote {args.out}")
    return 0


def jobs(env: dict, *commands: list[str], allowed=(0,)) -> None:
    for command in commands:
        code = subprocess.run([sys.executable, "-m", "jobs", *command], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL).returncode
        if code not in allowed:
            raise SystemExit(f"python -m jobs {' '.join(command)} exited with {code}")


def shoot(html_path: Path, out: Path, *, width: int) -> None:
    # Mail clients run no script; neither does this page.
    with chromium_page(width=width, height=900, javascript=False) as page:
        page.goto(html_path.resolve().as_uri())
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)


if __name__ == "__main__":
    raise SystemExit(main())
