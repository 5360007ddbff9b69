"""``python -m jobs <command>``: a table of commands, each a module with
``HELP``, ``add_arguments(parser)`` and ``main(args, ctx) -> exit code``.

Only the command being run is imported: ``--help`` reads each module's ``HELP`` from its
source, so listing the commands loads neither the scheduler's library nor Stripe's, and no
command imports the dashboard.

Exit codes (public contract): 0 done, 1 the job failed, 2 bad usage or configuration,
3 done but something needs a person.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import signal
import sys
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, JobBusy, JobFailed
from core.runs import TRIGGERS

# command name -> module; each module keeps its job logic and its CLI glue together.
COMMANDS: dict[str, str] = {
    "migrate": "jobs.admin.migrate",
    "demo-data": "jobs.admin.demo_data",
    "reconcile": "jobs.reconcile.command",
    "review": "jobs.reconcile.review",
    "cleanup": "jobs.cleanup.command",
    "health-snapshot": "jobs.health.snapshot",
    "health-report": "jobs.health.report",
    "sweep": "jobs.replay.sweep",
    "schedule": "jobs.schedule.runner",
    "hash-password": "jobs.admin.hash_password",
    "retry": "jobs.replay.retry",
    "watch": "jobs.alerting.watch",
    "status": "jobs.health.status",
    "metrics": "jobs.health.metrics",
}


class Context:
    """What a command needs from the outside world, created once per invocation."""

    def __init__(self, *, json_output: bool = False, trigger: str = "cli"):
        self.json_output = json_output
        self.trigger = trigger

    @cached_property
    def settings(self):
        from core.settings import get_settings

        return get_settings()

    def jobs_engine(self):
        from core.db import check_connection, create_jobs_engine

        engine = create_jobs_engine(self.settings)
        check_connection(engine)
        return engine

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def say(self, message: str) -> None:
        """Human progress and results; kept off stdout under --json."""
        print(message, file=sys.stderr if self.json_output else sys.stdout, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    def print_json(self, data) -> None:
        print(json.dumps(data, indent=2, default=str, sort_keys=True))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep its message to one line
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def command_help(module_name: str) -> str:
    """A command module's ``HELP``, read from its source without importing it."""
    spec = importlib.util.find_spec(module_name)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "HELP" for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{module_name} declares no HELP")


def _chosen_command(argv: list[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of the command ``argv`` names (of every command when
    ``argv`` is None: that imports them all)."""
    parser = _Parser(
        prog="python -m jobs",
        description="Jobs of the Stripe webhook monitor: migrations, demo data, "
        "reconciliation, cleanup and more.",
        epilog="Exit codes: 0 done, 1 the job failed, 2 bad usage or configuration, "
        "3 done but something needs a person.",
    )
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback when something fails (for bug reports)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = _chosen_command(argv) if argv is not None else None
    for name, module_name in COMMANDS.items():
        help_text = command_help(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if argv is not None and name != chosen:
            continue  # never parsed: its module stays unimported
        module = importlib.import_module(module_name)
        sub.add_argument("--json", action="store_true",
                         help="print a machine-readable summary on stdout")
        module.add_arguments(sub)
        # Who started the run, recorded in job_runs (the dashboard's gateway passes 'dashboard').
        sub.add_argument("--trigger", choices=TRIGGERS, default="cli", help=argparse.SUPPRESS)
        sub.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    ctx = Context(json_output=args.json, trigger=args.trigger)
    try:
        return int(args._module.main(args, ctx) or EXIT_OK)
    except KeyboardInterrupt:
        return _fail(ctx, EXIT_FAILED, "interrupted", "interrupted")
    except Exception as exc:
        if _missing_table(exc):
            return _fail(ctx, EXIT_USAGE, "error",
                         "the database has none of the project's tables yet: run 'python -m jobs migrate' first")
        if isinstance(exc, ConfigError):
            return _fail(ctx, EXIT_USAGE, "error", str(exc))
        if isinstance(exc, JobBusy):
            return _fail(ctx, EXIT_FAILED, "skipped", str(exc))
        if isinstance(exc, JobFailed):
            return _fail(ctx, EXIT_FAILED, "failed", str(exc))
        if args.traceback:
            raise
        from jobs.runtime import error_line

        return _fail(ctx, EXIT_FAILED, "failed", f"{error_line(exc)} (run with --traceback for details)")


def _fail(ctx: Context, code: int, label: str, message: str) -> int:
    """One line on stderr; under --json also a JSON error object on stdout, for scripts."""
    print(f"{label}: {message}", file=sys.stderr, flush=True)
    if ctx.json_output:
        ctx.print_json({"error": message, "outcome": label, "exit_code": code})
    return code


def _missing_table(exc: BaseException) -> bool:
    """True when the exception (or one it came from) is PostgreSQL's 'relation does not exist'."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "sqlstate", None) == "42P01" or getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _QuietStdout:
    """stdout that stops writing, silently, once the reader has gone (``... | head``).

    The job itself goes on: a reconciliation must not stop half-way because nobody reads its
    progress any more. The file descriptor is pointed at /dev/null so the interpreter's own
    flush at exit does not complain either.
    """

    def __init__(self, stream):
        self._stream = stream
        self._closed = False

    def write(self, text):
        if self._closed:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self):
        if self._closed:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self):
        import os

        self._closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def interruptible() -> None:
    """Ctrl+C (SIGINT) stops a command even when it was started with SIGINT ignored: a shell
    starts background jobs of a script that way, and Python then keeps ignoring it, so an
    interrupted load or cleanup would run on. Called by ``python -m jobs`` only."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def quiet_broken_pipe() -> None:
    """Called by ``python -m jobs`` (not by in-process callers, whose stdout is theirs)."""
    if not isinstance(sys.stdout, _QuietStdout):
        sys.stdout = _QuietStdout(sys.stdout)
