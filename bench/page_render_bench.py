"""How long each dashboard page takes to render (Streamlit AppTest) at a given event count.

    python bench/page_render_bench.py --events 10000      # quick check (well under a minute)
    python bench/page_render_bench.py --events 1000000    # the 1M figure (loading takes a few minutes)
    python bench/page_render_bench.py --database-url URL --windows 30d   # a database loaded before

Builds a throwaway database (an embedded PostgreSQL in a temporary folder, or a scratch
database on DATABASE_URL's server, dropped afterwards), loads 30 days of demo history with
``python -m jobs demo-data --events-per-day N/30``, then renders every page in AppTest for
each window (24h, 7d, 30d): once cold (query cache emptied, so every query hits PostgreSQL)
and ``--runs`` times warm (the cached case a second visitor sees). Prints a table of
milliseconds: cold, and the median of the warm runs. One size per call.

``--server system`` runs it all on a throwaway cluster of the machine's own PostgreSQL
(Debian's, with LLVM JIT as Supabase's has) instead of the embedded one, started with any
``--server-setting NAME=VALUE`` (e.g. ``jit_above_cost=0`` to make the server compile every
statement it can, or ``jit=off``), so the figures show both kinds of server.

With ``--database-url`` nothing is loaded or dropped: the pages render against that
database as it is (migrated and loaded before, e.g. one 10M-event load built once), and
the bench prints how many events it holds; ``--events`` does not apply.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from devharness import ThrowawayDatabase, events_held, patched_env
from devharness.database import load_demo_history
from devharness.system_postgres import SystemPostgres

REPO = Path(__file__).resolve().parent.parent

PAGES = ["overview", "events", "errors", "funnel", "reconciliation", "health"]
WINDOWS = ["24h", "7d", "30d"]
DAYS = 30


def server_setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not (name and equals):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="webhook events in all (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="warm runs per page and window (default %(default)s)")
    parser.add_argument("--pages", nargs="+", choices=PAGES, default=PAGES)
    parser.add_argument("--windows", nargs="+", choices=WINDOWS, default=WINDOWS,
                        help="windows to render (default: all)")
    parser.add_argument("--database-url", metavar="URL",
                        help="render against this migrated, loaded database as it is "
                             "(no load, no drop) instead of a throwaway one")
    parser.add_argument("--server", choices=["embedded", "system"], default="embedded",
                        help="throwaway database on the embedded PostgreSQL or on a cluster of the "
                             "machine's own PostgreSQL server (default %(default)s)")
    parser.add_argument("--server-setting", action="append", default=[], metavar="NAME=VALUE",
                        type=server_setting,
                        help="with --server system: a server setting (repeatable), e.g. jit_above_cost=0")
    return parser.parse_args(argv)


def render_ms(page: str, window: str, *, cold: bool) -> float:
    from streamlit.testing.v1 import AppTest

    from dashboard import data
    from dashboard.components.charts import FIGURES

    if cold:
        data.refresh()
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=600)
    at.session_state["window_choice"] = window
    # The first run renders the overview; time the run of the page itself.
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}/page.py")
    if cold:  # every query read and every figure built
        data.refresh()
        FIGURES.clear()
    started = time.perf_counter()
    at.run()
    elapsed = (time.perf_counter() - started) * 1000
    if at.exception:
        raise SystemExit(f"{page} ({window}) raised: {at.exception[0].value}")
    return elapsed


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.database_url:
        with patched_env(DATABASE_URL=args.database_url, DASHBOARD_DATABASE_URL=None, MONITOR_AUTH="none"):
            bench(args, args.database_url, load_first=False)
        return 0
    # The environment is the caller's again afterwards (main() may be called from Python).
    with ExitStack() as stack:
        server_url = None
        if args.server == "system":
            server = stack.enter_context(SystemPostgres(settings=dict(args.server_setting)))
            server_url = server.url
            print(f"PostgreSQL {server.version} (the machine's own server), settings: "
                  f"{dict(args.server_setting) or 'its defaults'}")
        database = stack.enter_context(ThrowawayDatabase(server_url=server_url, migrate=False))
        stack.enter_context(patched_env(DATABASE_URL=database.url, DASHBOARD_DATABASE_URL=None, MONITOR_AUTH="none"))
        bench(args, database.url)
    return 0


def bench(args, url: str, *, load_first: bool = True) -> None:
    from streamlit import config

    config.set_option("server.address", "127.0.0.1")  # login off is only allowed on loopback
    # AppTest runs pages without a server; Streamlit says so once per cached call. Not news here.
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if load_first:
        seconds = load_demo_history(url, events=args.events, days=DAYS)
        print(f"loaded {args.events:,} events over {DAYS} days in {seconds:.1f} s")
    else:
        print(f"{events_held(url):,} events in the given database (nothing loaded)")
    render_ms("overview", "24h", cold=True)  # warm-up: imports, connection pool
    print(f"{'page':<15}{'window':>7}{'cold ms':>10}{'warm ms':>10}")
    for page in args.pages:
        for window in args.windows:
            cold = render_ms(page, window, cold=True)
            warm = statistics.median(render_ms(page, window, cold=False) for _ in range(args.runs))
            print(f"{page:<15}{window:>7}{cold:>10.0f}{warm:>10.0f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
