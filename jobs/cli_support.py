"""What the commands' CLI glue shares: argument types with one-line messages (argparse turns
them into ``error: ...`` and exit 2) and the self-overwriting progress line of long jobs."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from typing import Callable, Iterator


def whole_number(minimum: int | None = None, maximum: int | None = None, *,
                 unit: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number, within ``minimum``..``maximum`` when given;
    ``unit`` ("days") is named in the messages."""
    of_unit = f" of {unit}" if unit else ""
    in_unit = f" {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number{of_unit}: {text!r}") from None
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between {minimum:,} and {maximum:,}{in_unit}, not {value:,}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:,}{in_unit}, not {value:,}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}{in_unit}, not {value:,}")
        return value
    return parse


class TerminalProgress:
    """One self-overwriting status line on a terminal; nothing when output is redirected."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.shown = False

    def __call__(self, message: str) -> None:
        self.stream.write(f"\r\x1b[2K{message}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def terminal_progress(*, json_output: bool = False) -> Iterator[TerminalProgress | None]:
    """A progress line on stderr while the block runs when stderr is a terminal and the
    output is not ``--json``; None otherwise (the job then reports progress to no one but
    ``job_runs``). The line is ended when the block ends, however it ends."""
    progress = TerminalProgress() if not json_output and sys.stderr.isatty() else None
    try:
        yield progress
    finally:
        if progress:
            progress.close()
