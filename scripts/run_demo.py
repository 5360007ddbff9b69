"""``make run``: the dashboard on the embedded database, with demo data and a local Stripe.

1. migrate the embedded database (in ``MONITOR_DATA_DIR``);
2. load fresh demo data (so the history ends now; ``--keep-data`` reuses what is there);
3. start the local Stripe server on 127.0.0.1 in the background, serving the demo's
   Checkout Sessions and events, so reconciliation, cleanup and the sweep work from the
   dashboard;
4. sweep the last 72 hours once, so the missed events are there to see;
5. start ``python -m jobs watch`` (alerts delivered to a local webhook sink that prints each
   one here, prefixed ``[alert]``) and ``python -m jobs schedule``, so the Alerts page, the
   banner and the verdict are live;
6. run Streamlit in the foreground. Ctrl+C stops them all.

The demo's settings (``MONITOR_AUTH=none``, ``STRIPE_API_BASE``, ``STRIPE_API_KEY``) are
given to these child processes only, never to the calling shell. ``DATABASE_URL`` and
``DASHBOARD_DATABASE_URL`` are ignored: the demo never writes into a configured database.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from devharness import ManagedProcess, ProcessFailed, line_ready
from devharness.http_sink import HttpSink, Received

REPO = Path(__file__).resolve().parent.parent
DEMO_STRIPE_KEY = "sk_test_demo_local_stripe_000000000000"
DATABASE_SETTINGS = ("DATABASE_URL", "DASHBOARD_DATABASE_URL")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from jobs.admin import demo_data

    parser = argparse.ArgumentParser(
        prog="scripts/run_demo.py",
        description="Run the dashboard on the embedded database with demo data and a local "
        "Stripe server (what 'make run' does).")
    parser.add_argument("--port", type=int, default=8501,
                        help="dashboard port (default %(default)s; 0: a free one)")
    parser.add_argument("--stripe-port", type=int, default=12111,
                        help="local Stripe port (default %(default)s; a free one if taken, or 0)")
    parser.add_argument("--days", type=int, default=demo_data.DEFAULT_DAYS,
                        help="days of demo history (default %(default)s)")
    parser.add_argument("--events-per-day", type=int, default=demo_data.DEFAULT_EVENTS_PER_DAY,
                        help="demo webhook events per day (default %(default)s)")
    parser.add_argument("--seed", type=int, default=demo_data.DEFAULT_SEED,
                        help="demo data seed (default %(default)s)")
    parser.add_argument("--keep-data", action="store_true",
                        help="reuse the demo data already loaded instead of loading it afresh")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def prepare_database(args: argparse.Namespace) -> Path:
    """Migrate, load the demo data unless kept; return the Stripe state file's path."""
    from core.db import create_jobs_engine
    from core.settings import get_settings
    from jobs.admin import demo_data, migrate

    settings = get_settings(DATABASE_URL=None, DASHBOARD_DATABASE_URL=None)
    state_path = demo_data.default_state_path(settings)
    say(f"embedded PostgreSQL in {Path(settings.MONITOR_DATA_DIR).expanduser()}")
    engine = create_jobs_engine(settings)
    try:
        migrate.run(engine, progress=say)
        if args.keep_data and state_path.exists():
            with engine.connect() as conn:
                present = demo_data.existing_rows(conn)
            if present["events"] and not present["foreign_row"]:
                say(f"reusing the demo data loaded before ({present['events']:,} events)")
                return state_path
        demo_data.run(engine, now=datetime.now(timezone.utc), days=args.days,
                      events_per_day=args.events_per_day, seed=args.seed, reset=True,
                      stripe_state_path=state_path, progress=say)
    finally:
        engine.dispose()
    return state_path


def start_local_stripe(state_path: Path, port: int, env: dict[str, str]) -> ManagedProcess:
    """The local Stripe server on ``port``, or on a port the kernel picks when that one is taken
    (or 0); returned once it listens, its URL in ``ready_value.group(1)`` (it says which)."""
    def process(on_port: int) -> ManagedProcess:
        return ManagedProcess(
            [sys.executable, "-m", "local_stripe", "--state", str(state_path), "--host", "127.0.0.1",
             "--port", str(on_port), "--api-key", DEMO_STRIPE_KEY, "--rate-limit", "25"],
            name="the local Stripe server", cwd=REPO, env=env,
            ready=line_ready(r"local Stripe API on (http://127\.0\.0\.1:\d+)"), stop_timeout_s=10)

    preferred = process(port)
    try:
        return preferred.start()
    except ProcessFailed:
        taken = port != 0 and "cannot listen" in preferred.log()
        preferred.close()
        if not taken:
            raise
    return process(0).start()


def demo_exports(stripe_url: str, *, unset_database: bool = False) -> str:
    """A shell line setting the demo's Stripe settings (and leaving DATABASE_URL out when set)."""
    import shlex

    line = f"export STRIPE_API_BASE={shlex.quote(stripe_url)} STRIPE_API_KEY={shlex.quote(DEMO_STRIPE_KEY)}"
    return line + ("; unset DATABASE_URL" if unset_database else "")


def _interrupt(signum, frame):
    # SIGTERM (a process manager, a test) stops the children the way Ctrl+C does.
    raise KeyboardInterrupt


def sweep_for_missed_events(env: dict[str, str]) -> None:
    """One sweep of the last 72 hours, as the schedule would run, so the dashboard opens
    with the events Stripe sent that the demo app never recorded."""
    result = subprocess.run([sys.executable, "-m", "jobs", "sweep", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    try:
        import json

        found = json.loads(result.stdout)["missing_found"]
    except (ValueError, KeyError):
        say(f"the sweep for missed events did not finish: {result.stderr.strip()[-300:]}")
        return
    say(f"the sweep found {found} event(s) Stripe sent that the app never recorded "
        "(Overview, Events and Reconciliation show them)")


def print_alert(request: Received) -> tuple[int, bytes]:
    """The demo's alert channel: a local webhook sink that prints each notification."""
    import json

    try:
        body = json.loads(request.body)
        state = "RESOLVED" if body.get("status") == "resolved" else str(body.get("severity", "")).upper()
        print(f"[alert] {state} {body.get('rule')}: {body.get('summary')}", flush=True)
    except (ValueError, AttributeError):
        print(f"[alert] {request.body[:200]!r}", flush=True)
    return 200, b"ok"


def start_watchers(env: dict[str, str]) -> list[ManagedProcess]:
    """``watch`` (rules evaluated every few seconds, alerts to the sink) and ``schedule``."""
    watch = ManagedProcess([sys.executable, "-m", "jobs", "watch"], name="watch", cwd=REPO, env=env,
                           ready=line_ready("evaluated the rules once"), timeout_s=120, stop_timeout_s=20)
    schedule = ManagedProcess([sys.executable, "-m", "jobs", "schedule"], name="schedule", cwd=REPO, env=env,
                              stop_timeout_s=20)
    return [watch.start(), schedule.start()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ignored = [name for name in DATABASE_SETTINGS if os.environ.get(name)]
    if ignored:
        say(f"ignoring {' and '.join(ignored)}: the demo runs on the embedded database only")
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl+C stops the demo even when it was started with SIGINT ignored (a background job
    # of a shell without job control), which Python would otherwise keep ignoring.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    from core.embedded import embedded_running, stop_embedded
    from core.errors import MonitorError
    from core.settings import get_settings

    data_dir = get_settings(DATABASE_URL=None).MONITOR_DATA_DIR
    # The embedded server outlives the processes that use it; one this demo started is
    # stopped with it, so Ctrl+C leaves nothing running. One that was up before stays up.
    started_database = not embedded_running(data_dir)
    stripe = dashboard = None
    watchers: list[ManagedProcess] = []
    sink_stack = ExitStack()  # the alert sink, stopped last
    try:
        state_path = prepare_database(args)
        env = {key: value for key, value in os.environ.items() if key not in DATABASE_SETTINGS}
        stripe = start_local_stripe(state_path, args.stripe_port, env)
        stripe_url = stripe.ready_value.group(1)
        from jobs.admin.demo_data import DEMO_ENDPOINT_URL

        env.update(MONITOR_AUTH="none", STRIPE_API_BASE=stripe_url, STRIPE_API_KEY=DEMO_STRIPE_KEY,
                   MONITOR_STRIPE_ENDPOINT_URL=DEMO_ENDPOINT_URL)

        sweep_for_missed_events(env)

        sink = sink_stack.enter_context(HttpSink(judge=print_alert))
        env.update(MONITOR_ALERT_WEBHOOK_URL=sink.url)
        watchers = start_watchers(env)
        say("watch and schedule are running: alerts fire on the Alerts page and print here as [alert] lines")

        where = f"http://127.0.0.1:{args.port}" if args.port else "a free port (Streamlit prints its URL)"
        say(f"dashboard on {where} (login disabled: it listens on 127.0.0.1 only); "
            f"local Stripe on {stripe_url}. Ctrl+C stops both.")
        # The same settings for another terminal, so `python -m jobs reconcile` (sweep,
        # cleanup, status) can be tried against the demo at once.
        say("to run the jobs against the demo from another shell, paste:")
        print(demo_exports(stripe_url, unset_database=bool(ignored)), flush=True)
        # Its output goes to this terminal. Ctrl+C reaches it from the terminal; otherwise it is
        # stopped with SIGTERM, which it handles as cleanly (SIGINT may be ignored, see above).
        dashboard = ManagedProcess(
            [sys.executable, "-m", "dashboard",
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(args.port), "--browser.gatherUsageStats", "false"],
            name="the dashboard", cwd=REPO, env=env, capture=False, stop_timeout_s=10).start()
        code = dashboard.wait()
        if code not in (0, -signal.SIGINT, -signal.SIGTERM):
            say(f"the dashboard exited with code {code}")
            return 1
        return 0
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except (MonitorError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for process in (dashboard, *watchers, stripe):
            if process is not None:
                process.close()
        sink_stack.close()
        if started_database:
            try:
                stop_embedded(data_dir)
                say("stopped the embedded PostgreSQL")
            except Exception as exc:  # the demo is over either way; say what is left
                say(f"the embedded PostgreSQL in {data_dir} may still be running ({exc})")


if __name__ == "__main__":
    sys.exit(main())
