"""In production (MONITOR_EMBEDDED=off, as the image sets) a process without DATABASE_URL
refuses to start with one line, and creates nothing: no embedded database in a folder that a
container loses at its next restart. The entry point's health check tells a working process
from one that cannot reach its database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.db import dashboard_url, jobs_url
from core.errors import ConfigError
from core.settings import Settings
from tests.conftest import REPO

ENTRYPOINT = REPO / "deploy" / "entrypoint.py"


def production_env(tmp_path, **more: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "DASHBOARD_DATABASE_URL", "MONITOR_EMBEDDED", "MONITOR_AUTH")}
    return {**env, "MONITOR_EMBEDDED": "off", "MONITOR_DATA_DIR": str(tmp_path / "monitor-data"),
            "STRIPE_WEBHOOK_SECRET": "whsec_test", **more}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


@pytest.mark.parametrize("argv", [
    [sys.executable, "-m", "jobs", "status"],
    [sys.executable, "-m", "jobs", "migrate"],
    [sys.executable, "-m", "jobs", "watch", "--once"],
    [sys.executable, str(ENTRYPOINT), "dashboard"],
    [sys.executable, str(ENTRYPOINT), "receiver"],
    [sys.executable, str(ENTRYPOINT), "schedule"],
], ids=["status", "migrate", "watch", "dashboard", "receiver", "schedule"])
def test_without_database_url_a_production_process_exits_2_and_creates_nothing(tmp_path, argv):
    result = run(argv, production_env(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL is not set" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "monitor-data").exists()


def test_the_setting_takes_only_auto_or_off(tmp_path):
    result = run([sys.executable, "-m", "jobs", "status"], production_env(tmp_path, MONITOR_EMBEDDED="no"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: MONITOR_EMBEDDED:") and "'auto' or 'off'" in result.stderr


def test_a_url_set_is_used_whatever_the_setting_says():
    settings = Settings(DATABASE_URL="postgresql://u:p@db/x", MONITOR_EMBEDDED="off")
    assert jobs_url(settings) == dashboard_url(settings) == "postgresql+psycopg://u:p@db/x"
    # A read-only dashboard needs only its own URL.
    # DATABASE_URL=None: the test session exports one, which the settings would read.
    reader = Settings(DATABASE_URL=None, DASHBOARD_DATABASE_URL="postgresql://reader:p@db/x", MONITOR_EMBEDDED="off")
    assert dashboard_url(reader) == "postgresql+psycopg://reader:p@db/x"
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        jobs_url(reader)


def test_the_dashboard_refuses_login_off_on_every_address(tmp_path, database_url):
    env = production_env(tmp_path, DATABASE_URL=database_url, MONITOR_AUTH="none",
                         STREAMLIT_SERVER_ADDRESS="0.0.0.0")
    result = run([sys.executable, str(ENTRYPOINT), "dashboard"], env)
    assert result.returncode == 2
    assert "MONITOR_AUTH=none" in result.stderr and "0.0.0.0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_jobs_commands_pass_through_the_entry_point(tmp_path, database_url):
    result = run([sys.executable, str(ENTRYPOINT), "status", "--json"],
                 production_env(tmp_path, DATABASE_URL=database_url))
    assert result.returncode in (0, 3), result.stderr
    assert '"state"' in result.stdout or '"healthy"' in result.stdout


def test_a_worker_is_healthy_while_its_database_answers(tmp_path, database_url, down_port):
    healthy = run([sys.executable, str(ENTRYPOINT), "healthcheck", "watch"],
                  production_env(tmp_path, DATABASE_URL=database_url))
    assert healthy.returncode == 0, healthy.stderr
    unreachable = f"postgresql://monitor:secret@127.0.0.1:{down_port}/monitor"
    sick = run([sys.executable, str(ENTRYPOINT), "healthcheck", "schedule"],
               production_env(tmp_path, DATABASE_URL=unreachable))
    assert sick.returncode == 1
    no_server = run([sys.executable, str(ENTRYPOINT), "healthcheck", "receiver", "--port", str(down_port)],
                    production_env(tmp_path, DATABASE_URL=database_url))
    assert no_server.returncode == 1
