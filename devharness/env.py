"""Environment variables changed for a block, restored exactly afterwards."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping


@contextmanager
def patched_env(values: Mapping[str, str | None] | None = None, /, **more: str | None) -> Iterator[None]:
    """Set (a string) or unset (``None``) variables; on exit every one is as it was before,
    including variables the block itself changed."""
    changes = {**(values or {}), **more}
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
