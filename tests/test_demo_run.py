"""``make run``'s launcher: embedded database with demo data, local Stripe, dashboard; Ctrl+C
stops it all."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.embedded import embedded_running, embedded_url, stop_embedded
from tests.conftest import REPO

LAUNCHER = REPO / "scripts" / "run_demo.py"


def launcher_module():
    spec = importlib.util.spec_from_file_location("run_demo", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the launcher runs only under __main__
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def wait_for_health(url: str, launcher: subprocess.Popen, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert launcher.poll() is None, f"launcher exited early with code {launcher.returncode}"
        try:
            return get(url)[0]
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout_s:.0f} s")


@pytest.fixture
def data_folder():
    """A data folder PostgreSQL's own user can pass through when the tests run as root
    (pytest's tmp_path sits in a private folder, which the embedded start will not open)."""
    folder = Path(tempfile.mkdtemp(prefix="demo-run-"))
    folder.chmod(0o711)
    yield folder
    stop_embedded(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_launcher_serves_demo_data_and_stops_everything_on_ctrl_c(data_folder):
    tmp_path = data_folder
    key = launcher_module().DEMO_STRIPE_KEY
    dashboard_port, stripe_port = free_port(), free_port()
    env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path),
           # A configured database the demo must leave alone (it is not even reachable).
           "DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/not_for_the_demo"}
    for name in ("STRIPE_API_BASE", "STRIPE_API_KEY", "MONITOR_AUTH", "DASHBOARD_DATABASE_URL"):
        env.pop(name, None)
    launcher = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--port", str(dashboard_port), "--stripe-port", str(stripe_port),
         "--days", "2", "--events-per-day", "100"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for_health(f"http://127.0.0.1:{dashboard_port}/_stcore/health", launcher) == 200
        status, body = get(f"http://127.0.0.1:{stripe_port}/v1/checkout/sessions?limit=3",
                           {"Authorization": f"Bearer {key}"})
        sessions = json.loads(body)["data"]
        assert status == 200 and len(sessions) == 3
        assert all(s["object"] == "checkout.session" for s in sessions)
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)

    assert launcher.returncode == 0, output
    assert "ignoring DATABASE_URL" in output
    # The demo's Stripe settings, ready to paste into another shell.
    assert (f"export STRIPE_API_BASE=http://127.0.0.1:{stripe_port} STRIPE_API_KEY={key}; unset DATABASE_URL"
            in output.splitlines())
    assert not listening(dashboard_port) and not listening(stripe_port)
    # The embedded server the demo started stopped with it: nothing is left running.
    assert "stopped the embedded PostgreSQL" in output
    assert not embedded_running(tmp_path)
    # The data went into the embedded database of MONITOR_DATA_DIR; attaching here with
    # keep_running=False starts it again and stops it when the test session ends.
    engine = sa.create_engine(embedded_url(tmp_path, keep_running=False))
    try:
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar()
            registrations = conn.execute(sa.text("SELECT count(*) FROM registrations")).scalar()
    finally:
        engine.dispose()
    assert events >= 200 and registrations > 0
