"""``python -m jobs hash-password``: make the MONITOR_PASSWORD_HASH for the dashboard login.

Asks for the password twice without echoing it (or reads one line from stdin with
``--stdin``, for scripts) and prints a salted scrypt hash. It touches no database, so unlike
the jobs it takes no lock and records no run.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from core.errors import ConfigError
from core.passwords import hash_password

HELP = "print a password hash for the dashboard login (MONITOR_PASSWORD_HASH)"
MIN_LENGTH = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of standard input instead of asking")


def _read_password(args) -> str:
    if args.stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        first = getpass.getpass("Dashboard password: ")
        second = getpass.getpass("Same password again: ")
    except EOFError:
        raise ConfigError("no password given (use --stdin to pipe one in)") from None
    if first != second:
        raise ConfigError("the two passwords differ; nothing was printed")
    return first


def main(args: argparse.Namespace, ctx) -> int:
    password = _read_password(args)
    if len(password) < MIN_LENGTH:
        raise ConfigError(f"the password must have at least {MIN_LENGTH} characters")
    encoded = hash_password(password)
    if args.json:
        ctx.print_json({"password_hash": encoded})
        return 0
    print(encoded)
    # The advice goes to stderr so `python -m jobs hash-password --stdin > file` keeps just the hash.
    print("Set it as MONITOR_PASSWORD_HASH (in single quotes: it contains $) or as "
          "password_hash in .streamlit/secrets.toml.", file=sys.stderr)
    return 0
