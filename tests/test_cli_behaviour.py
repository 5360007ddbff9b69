"""The command line keeps its exit-code contract in the situations people hit first."""

import json
import subprocess
import sys
import uuid

import sqlalchemy as sa

from core.db import normalise_url


def _jobs(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


def _empty_database(engine) -> tuple[str, callable]:
    """A database on the test server with none of the project's tables; returns (url, drop)."""
    name = f"webhook_monitor_empty_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return engine.url.set(database=name).render_as_string(hide_password=False), drop


def test_a_database_without_the_tables_says_to_migrate_with_exit_2(engine, monkeypatch):
    url, drop = _empty_database(engine)
    try:
        import os

        env = {**os.environ, "DATABASE_URL": normalise_url(url)}
        plain = _jobs("health-snapshot", env=env)
        as_json = _jobs("health-snapshot", "--json", env=env)
    finally:
        drop()
    assert plain.returncode == 2, plain.stderr
    assert "python -m jobs migrate" in plain.stderr
    assert "Traceback" not in plain.stderr and "ProgrammingError" not in plain.stderr
    assert plain.stdout == ""
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)
    assert error["exit_code"] == 2 and "migrate" in error["error"]


def test_a_reader_that_goes_away_ends_the_output_quietly(database_url):
    # The read end is closed before the command writes, as `| head` does once it has its lines.
    proc = subprocess.Popen([sys.executable, "-m", "jobs", "hash-password", "--stdin"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, stderr = proc.communicate(b"correct horse battery staple\n", timeout=60)
    assert "BrokenPipeError" not in stderr.decode() and "Traceback" not in stderr.decode(), stderr
    assert proc.returncode == 0  # the command did its work; only its reader left


def test_a_failure_under_json_is_also_a_json_object(database_url):
    result = _jobs("review", "show", "999999", "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)
    assert error["exit_code"] == 2 and error["error"]
    assert result.stderr.startswith("error: ")
