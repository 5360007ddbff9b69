"""The production entry point: the process to run is the first argument.

    entrypoint.py dashboard [STREAMLIT OPTIONS]  the dashboard (python -m dashboard)
    entrypoint.py receiver [OPTIONS]             the reference receiver (python -m tracking.receiver)
    entrypoint.py schedule | watch | migrate | status | ...   any `python -m jobs` command
    entrypoint.py healthcheck [PROCESS]          exit 0 when the running process is healthy

The image runs it under tini (``ENTRYPOINT``), the systemd units directly. The process is
exec'd in place of this script, so it receives the stop signal itself: ``schedule`` lets
the running job finish, ``watch`` ends after the current evaluation and delivery, uvicorn
answers the deliveries in flight, Streamlit closes its sessions.

Before the dashboard or the receiver starts, the configuration is checked as the jobs check
it: a bad value, or no ``DATABASE_URL`` with ``MONITOR_EMBEDDED=off``, exits 2 with one line.
The dashboard listens where Streamlit's ``server.address`` says (``.streamlit/config.toml``:
127.0.0.1; the image sets ``STREAMLIT_SERVER_ADDRESS=0.0.0.0``), and login off
(``MONITOR_AUTH=none``) is refused on any address but a loopback one.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
DASHBOARD_PORT = 8501
RECEIVER_PORT = 8000
HEALTH_TIMEOUT_S = 10


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def checked_settings(*, dashboard: bool):
    """The settings, or a one-line reason why this process may not start."""
    from core.db import require_database_url
    from core.settings import get_settings

    settings = get_settings()
    require_database_url(settings, dashboard=dashboard)
    return settings


def option(args: list[str], name: str, env: str, default: str) -> str:
    """``--name VALUE`` or ``--name=VALUE`` from ``args``, else the environment, else ``default``."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return (os.environ.get(env) if env else None) or default


def dashboard(args: list[str]) -> list[str]:
    settings = checked_settings(dashboard=True)
    address = option(args, "--server.address", "STREAMLIT_SERVER_ADDRESS", "127.0.0.1")
    from dashboard.auth import is_loopback  # the dashboard's own rule for login off

    if settings.MONITOR_AUTH == "none" and not is_loopback(address):
        from core.errors import ConfigError

        raise ConfigError(f"MONITOR_AUTH=none (login off) is allowed only on a loopback address, and the "
                          f"dashboard would listen on {address}: set MONITOR_PASSWORD_HASH or OIDC instead")
    return [sys.executable, "-m", "dashboard", *args]


def receiver(args: list[str]) -> list[str]:
    checked_settings(dashboard=False)
    return [sys.executable, "-m", "tracking.receiver", *args]


def running_process() -> list[str]:
    """The process this container runs and its arguments, read from PID 1's command line
    (tini's arguments: ``tini -- python entrypoint.py PROCESS ARGS``)."""
    try:
        words = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
    for index, word in enumerate(words):
        if word.endswith("entrypoint.py"):
            return [w for w in words[index + 1:] if w]
    return []


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as answer:
            return answer.status == 200
    except OSError:
        return False


def healthcheck(args: list[str]) -> int:
    """0 healthy, 1 not: the dashboard's and the receiver's own health endpoints; for the
    workers, whether ``jobs status`` can judge the database (0 healthy or 3 degraded both mean
    the process can do its work; 1 or 2, an unreachable or unmigrated database, do not).

    ``args`` name the process and its arguments; without them, PID 1's are read."""
    process, *options = args or running_process() or [""]
    if process == "dashboard":
        port = option(options, "--server.port", "STREAMLIT_SERVER_PORT", str(DASHBOARD_PORT))
        return 0 if http_ok(f"http://127.0.0.1:{port}/_stcore/health") else EXIT_UNHEALTHY
    if process == "receiver":
        port = option(options, "--port", "", str(RECEIVER_PORT))
        return 0 if http_ok(f"http://127.0.0.1:{port}/healthz") else EXIT_UNHEALTHY
    import subprocess

    code = subprocess.run([sys.executable, "-m", "jobs", "status"], stdout=subprocess.DEVNULL,
                          timeout=60).returncode
    return 0 if code in (0, 3) else EXIT_UNHEALTHY


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return EXIT_USAGE
    process, args = argv[0], argv[1:]
    if process == "healthcheck":
        return healthcheck(args)
    from core.errors import ConfigError

    try:
        if process == "dashboard":
            command = dashboard(args)
        elif process == "receiver":
            command = receiver(args)
        else:  # a jobs command: the command line checks its own configuration (exit 2)
            command = [sys.executable, "-m", "jobs", process, *args]
    except ConfigError as exc:
        return fail(str(exc))
    sys.stdout.flush()
    os.chdir(ROOT)  # .streamlit/config.toml is read from the working folder
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
