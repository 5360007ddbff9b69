"""Reproducible installs: the lock files pin every dependency with hashes, the README's
commands install from them, and the dependency audit says when it cannot run."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib

import pytest

from devharness.http_sink import HttpSink
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("audit_dependencies", REPO / "scripts" / "audit_dependencies.py")
_audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_audit)
audit_data_problem = _audit.audit_data_problem


def requirement_name(spec: str) -> str:
    return re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0].lower().replace("_", "-")


def pins(lock: str) -> dict[str, list[str]]:
    """{package: [hashes]} of a pip-compile lock file."""
    found: dict[str, list[str]] = {}
    current = None
    for line in (REPO / lock).read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.\-]+)==\S+", line)
        if pinned:
            current = pinned.group(1).lower().replace("_", "-")
            found[current] = []
        elif current and "--hash=sha256:" in line:
            found[current].append(line.split("--hash=sha256:")[1].split()[0])
    return found


@pytest.mark.parametrize("lock, groups", [("requirements.lock", ["runtime"]),
                                          ("requirements-dev.lock", ["runtime", "dev"])])
def test_every_dependency_is_pinned_with_hashes(lock, groups):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {"runtime": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}
    pinned = pins(lock)
    missing = [spec for group in groups for spec in wanted[group] if requirement_name(spec) not in pinned]
    assert missing == [], f"{lock} lacks {missing}: run `make lock` after changing pyproject.toml"
    assert all(hashes for hashes in pinned.values())
    assert "--index-url" not in (REPO / lock).read_text()  # no machine's own package index in it


def test_the_readme_commands_install_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    assert "make audit" in (REPO / ".ci" / "run").read_text()


def test_the_audit_says_when_its_data_is_unreachable(down_port):
    assert "not reachable" in audit_data_problem(f"http://127.0.0.1:{down_port}/pypi/pip/24.0/json", timeout_s=2)
    with HttpSink() as sink:  # a server that answers, but not with vulnerability data
        assert audit_data_problem(f"{sink.base_url}/pypi/pip/24.0/json", timeout_s=2) is not None


def osv_answer(vulnerable: str):
    """An OSV query API that knows one advisory, for the package ``vulnerable``."""
    def answer(request) -> bytes:
        query = request.json()
        if query["package"]["name"] != vulnerable:
            return b"{}"
        return json.dumps({"vulns": [{
            "id": "GHSA-test-0000-0000", "summary": "a known hole", "published": "2026-01-01T00:00:00Z",
            "affected": [{"package": {"name": vulnerable, "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}]}],
        }]}).encode()
    return answer


def run_audit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "audit_dependencies.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_the_audit_fails_when_the_service_answers_and_knows_a_vulnerability(tmp_path):
    with HttpSink(reply=osv_answer("jinja2")) as osv:
        found = run_audit("--osv-url", f"{osv.base_url}/v1/query", "--cache-dir", str(tmp_path / "found"))
    assert found.returncode == 1, found.stdout + found.stderr
    assert "GHSA-test-0000-0000" in found.stdout and "dependency audit FAILED" in found.stdout
    with HttpSink(reply=osv_answer("no-such-package")) as osv:
        clean = run_audit("--osv-url", f"{osv.base_url}/v1/query", "--cache-dir", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "dependency audit passed" in clean.stdout
    # Every pinned version of both lock files was asked about.
    assert len(osv.received) > len(pins("requirements.lock"))


def test_the_audit_is_skipped_out_loud_when_the_service_is_down(down_port, tmp_path):
    skipped = run_audit("--osv-url", f"http://127.0.0.1:{down_port}/v1/query", "--cache-dir", str(tmp_path))
    assert skipped.returncode == 0 and skipped.stdout.startswith("dependency audit SKIPPED: ")


def test_the_audit_runs_the_pinned_pip_audit():
    assert "pip-audit" in pins("requirements-dev.lock")
    assert "pip install" not in (REPO / "scripts" / "audit_dependencies.py").read_text()


def test_ci_repeats_a_skipped_audit_just_above_the_test_summary():
    import os

    assert "DEPENDENCY_AUDIT" in (REPO / ".ci" / "run").read_text()
    env = {**os.environ, "DEPENDENCY_AUDIT": "dependency audit SKIPPED: https://pypi.org answered 404"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider",
                             "tests/test_lock_files.py", "-k", "readme_commands"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[-2] == env["DEPENDENCY_AUDIT"] and "1 passed" in lines[-1], result.stdout
