"""``python -m jobs hash-password``: the printed hash logs in with the password it was made from."""

import json
import subprocess
import sys

from core.passwords import verify_password
from devharness.browser import REPO


def hash_password_cli(*args, stdin):
    return subprocess.run([sys.executable, "-m", "jobs", "hash-password", *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_prints_a_hash_that_verifies():
    result = hash_password_cli("--stdin", stdin="a long passphrase\n")
    assert result.returncode == 0, result.stderr
    encoded = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1  # only the hash on stdout, advice on stderr
    assert verify_password("a long passphrase", encoded)
    assert not verify_password("a long passphrase\n", encoded)
    assert "MONITOR_PASSWORD_HASH" in result.stderr


def test_json_output():
    result = hash_password_cli("--stdin", "--json", stdin="another passphrase\n")
    assert result.returncode == 0
    assert verify_password("another passphrase", json.loads(result.stdout)["password_hash"])


def test_short_or_missing_password_is_bad_usage():
    for stdin in ("short\n", ""):
        result = hash_password_cli("--stdin", stdin=stdin)
        assert result.returncode == 2
        assert result.stderr.strip() == "error: the password must have at least 8 characters"
        assert result.stdout == ""
