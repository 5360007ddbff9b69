"""The command line keeps its exit-code contract in the situations people hit first."""

import json
import os
import subprocess
import sys

import pytest

from devharness import ThrowawayDatabase


def _jobs(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


def test_a_database_without_the_tables_says_to_migrate_with_exit_2(database_url):
    # A database on the test server with none of the project's tables.
    with ThrowawayDatabase(server_url=database_url, migrate=False, prefix="webhook_monitor_empty") as empty:
        env = {**os.environ, "DATABASE_URL": empty.url}
        plain = _jobs("health-snapshot", env=env)
        as_json = _jobs("health-snapshot", "--json", env=env)
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


@pytest.mark.parametrize("args, message", [
    (["retry", "--limit", "0"], "argument --limit: must be at least 1, not 0"),
    (["reconcile", "--lookback-days", "a week"], "argument --lookback-days: not a whole number of days: 'a week'"),
    (["health-report", "--days", "367"], "argument --days: must be between 1 and 366 days, not 367"),
    (["demo-data", "--events-per-day", "2.5"], "argument --events-per-day: not a whole number: '2.5'"),
    (["cleanup", "--batch-size", "many"], "argument --batch-size: not a whole number: 'many'"),
])
def test_a_bad_number_is_exit_2_with_one_line_naming_the_option(args, message):
    result = _jobs(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in result.stderr
