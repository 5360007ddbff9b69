"""Audit the lock files for known vulnerabilities with pip-audit, when its data is reachable.

    python scripts/audit_dependencies.py        # what `make audit` and CI run

pip-audit asks PyPI's JSON API for each pinned version's known vulnerabilities. Where that
API cannot be reached (an offline CI runner, a package mirror without it), the audit is
skipped with one line saying so and the exit code is 0; otherwise pip-audit's own exit code
is returned (1 when a pinned package has a known vulnerability).
"""

from __future__ import annotations

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


def audit_data_problem(url: str = PROBE_URL, timeout_s: float = 10) -> str | None:
    """Why PyPI's vulnerability data cannot be read from here, or None when it can."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url} is not reachable ({exc})"
    if "vulnerabilities" not in answer:
        return f"{url} answered without vulnerability data"
    return None


def main() -> int:
    problem = audit_data_problem()
    if problem:
        print(f"dependency audit skipped: {problem}")
        return 0
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "pip-audit"], check=True)
    # --strict: a package that could not be audited fails the run instead of passing silently.
    command = [sys.executable, "-m", "pip_audit", "--strict", "--require-hashes", "--disable-pip",
               "--progress-spinner", "off"]
    for lock in LOCK_FILES:
        command += ["-r", str(REPO / lock)]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
