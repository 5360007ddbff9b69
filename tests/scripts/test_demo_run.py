"""``make run``'s launcher: embedded database with demo data, local Stripe, dashboard; Ctrl+C
stops it all."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import sys
import urllib.request

import pytest
import sqlalchemy as sa

from core.embedded import embedded_running, embedded_url, stop_embedded
from devharness import ManagedProcess, http_ready
from devharness.database import data_folder
from devharness.scenarios.steps import wait_until
from tests.conftest import REPO

LAUNCHER = REPO / "scripts" / "run_demo.py"


def launcher_module():
    spec = importlib.util.spec_from_file_location("run_demo", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the launcher runs only under __main__
    return module


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def demo_ready(launcher: ManagedProcess) -> tuple[str, str] | None:
    """(dashboard URL, local Stripe URL) once both are announced and the dashboard is healthy."""
    output = launcher.log()
    dashboard = re.search(r"URL: (http://127\.0\.0\.1:\d+)", output)
    stripe = re.search(r"local Stripe on (http://127\.0\.0\.1:\d+)", output)
    if not (dashboard and stripe and http_ready(dashboard.group(1) + "/_stcore/health")(launcher)):
        return None
    return dashboard.group(1), stripe.group(1)


demo_ready.__doc__ = "both URLs announced and /_stcore/health answering"


@pytest.fixture
def data_dir():
    """A folder of its own for MONITOR_DATA_DIR, not under pytest's temporary root: the embedded
    server runs as another user when tests run as root, and every pytest session starting on
    the machine resets that root to owner-only access."""
    folder = data_folder("demo-run")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_launcher_serves_demo_data_and_stops_everything_on_ctrl_c(data_dir):
    key = launcher_module().DEMO_STRIPE_KEY
    env = {**os.environ, "MONITOR_DATA_DIR": str(data_dir),
           # A configured database the demo must leave alone (it is not even reachable).
           "DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/not_for_the_demo"}
    for name in ("STRIPE_API_BASE", "STRIPE_API_KEY", "MONITOR_AUTH", "DASHBOARD_DATABASE_URL"):
        env.pop(name, None)
    # Port 0: the dashboard and the local Stripe server each listen where the kernel says and
    # print their URL, read from the launcher's output.
    launcher = ManagedProcess(
        [sys.executable, str(LAUNCHER), "--port", "0", "--stripe-port", "0",
         "--days", "2", "--events-per-day", "100"],
        name="run_demo.py", cwd=data_dir, env=env, ready=demo_ready, timeout_s=120,
        stop_signal=signal.SIGINT, stop_timeout_s=60)
    with launcher:
        dashboard_url, stripe_url = launcher.ready_value
        status, body = get(f"{stripe_url}/v1/checkout/sessions?limit=3", {"Authorization": f"Bearer {key}"})
        sessions = json.loads(body)["data"]
        assert status == 200 and len(sessions) == 3
        assert all(s["object"] == "checkout.session" for s in sessions)
        # watch runs with the demo: the demo data's failed checkout events fire at once, and
        # the alert reaches the console through the demo's local sink.
        assert wait_until(lambda: "[alert] CRITICAL payment_event_failed" in launcher.log(), 60), launcher.log()[-2000:]
        launcher.stop()  # Ctrl+C
        output = launcher.log()

    dashboard_port, stripe_port = (int(url.rsplit(":", 1)[1]) for url in (dashboard_url, stripe_url))
    assert launcher.returncode == 0, output
    assert "ignoring DATABASE_URL" in output
    # The demo's Stripe settings, ready to paste into another shell.
    assert (f"export STRIPE_API_BASE=http://127.0.0.1:{stripe_port} STRIPE_API_KEY={key}; unset DATABASE_URL"
            in output.splitlines())
    assert not listening(dashboard_port) and not listening(stripe_port)
    # The embedded server the demo started stopped with it: nothing is left running.
    assert "stopped the embedded PostgreSQL" in output
    assert not embedded_running(data_dir)
    # The data went into the embedded database of MONITOR_DATA_DIR; attaching here starts it
    # again, stopped once read.
    engine = sa.create_engine(embedded_url(data_dir, keep_running=False))
    try:
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar()
            registrations = conn.execute(sa.text("SELECT count(*) FROM registrations")).scalar()
    finally:
        engine.dispose()
        stop_embedded(data_dir)
    assert events >= 200 and registrations > 0
