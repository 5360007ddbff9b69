"""Audit the lock files for known vulnerabilities with pip-audit, when its data is reachable.

    python scripts/audit_dependencies.py                  # what `make audit` and CI run
    python scripts/audit_dependencies.py --osv-url URL    # OSV's query API (or a copy of it) instead of PyPI's

pip-audit is the one pinned with its hashes in requirements-dev.lock (installed by `make
install`), never fetched at audit time. It asks the vulnerability service (PyPI's JSON API,
or OSV with ``--osv-url``) about each pinned version. The outcome:

- the service cannot be reached (an offline CI runner, a package mirror without PyPI's JSON
  API): ``dependency audit SKIPPED: <why>`` and exit 0, so an offline build still builds;
- it can be reached: pip-audit's own exit code, with ``--strict``: 1 when a pinned package
  has a known vulnerability or could not be checked (the service failing half-way included);
- pip-audit is not installed: exit 2, saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK_FILES = ("requirements.lock", "requirements-dev.lock")
# What pip-audit itself asks for, per pinned version; the answer must carry "vulnerabilities".
PROBE_URL = "https://pypi.org/pypi/pip/24.0/json"
# OSV's answer to a query about one version: a JSON object ({} when nothing is known).
OSV_PROBE = {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "24.0"}


def _answer(request: str | urllib.request.Request, timeout_s: float) -> tuple[object, str | None]:
    """(the JSON a service answered, None), or (None, why it could not be read)."""
    url = request if isinstance(request, str) else request.full_url
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response), None
    except urllib.error.HTTPError as exc:
        return None, f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return None, f"{url} is not reachable ({exc})"


def audit_data_problem(url: str = PROBE_URL, timeout_s: float = 10) -> str | None:
    """Why PyPI's vulnerability data cannot be read from here, or None when it can."""
    answer, problem = _answer(url, timeout_s)
    if problem is None and (not isinstance(answer, dict) or "vulnerabilities" not in answer):
        return f"{url} answered without vulnerability data"
    return problem


def osv_problem(url: str, timeout_s: float = 10) -> str | None:
    """Why an OSV query API cannot be used from here, or None when it answers a query."""
    request = urllib.request.Request(url, data=json.dumps(OSV_PROBE).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    answer, problem = _answer(request, timeout_s)
    if problem is None and not isinstance(answer, dict):
        return f"{url} did not answer like OSV's query API"
    return problem


def audit_command(*, osv_url: str | None, cache_dir: str | None) -> list[str]:
    # --strict: a package that could not be audited fails the run instead of passing silently.
    command = [sys.executable, "-m", "pip_audit", "--strict", "--require-hashes", "--disable-pip",
               "--progress-spinner", "off"]
    if osv_url:
        command += ["--vulnerability-service", "osv", "--osv-url", osv_url]
    if cache_dir:
        command += ["--cache-dir", cache_dir]
    for lock in LOCK_FILES:
        command += ["-r", str(REPO / lock)]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--osv-url", help="audit against this OSV query API instead of PyPI's JSON API")
    parser.add_argument("--cache-dir", help="pip-audit's HTTP cache (default: its own)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("pip_audit") is None:
        print("dependency audit failed: pip-audit is not installed; run `make install` "
              "(it is pinned in requirements-dev.lock)", file=sys.stderr)
        return 2
    problem = osv_problem(args.osv_url) if args.osv_url else audit_data_problem()
    if problem:
        print(f"dependency audit SKIPPED: {problem}")
        return 0
    code = subprocess.run(audit_command(osv_url=args.osv_url, cache_dir=args.cache_dir)).returncode
    print("dependency audit passed" if code == 0 else f"dependency audit FAILED (pip-audit exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
