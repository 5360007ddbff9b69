"""Start the real dashboard with ``python -m dashboard`` and drive it with Debian's Chromium.

Shared by every browser test (marker ``browser``)::

    from devharness.browser import exception_texts, log_in, open_page, password_env, streamlit_server
    from tests.support.browser import chromium_page

    def test_something(db):                      # db: empty migrated test database
        with streamlit_server(env=password_env("pw")) as server, chromium_page() as page:
            page.goto(server.url)
            log_in(page, "pw")
            open_page(page, "Reconciliation")
            assert not exception_texts(page)

The other helpers live in ``devharness.browser`` (scripts use them too). The server runs as a
subprocess in the repository folder with the test process's environment (so DATABASE_URL
points at the test database) plus ``env``. Chromium is ``/usr/bin/chromium`` (Playwright
cannot download browsers here); without it the test is skipped with a reason, unless CI is
set, where a missing browser is a failure.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import pytest

from devharness import browser
from devharness.browser import CHROMIUM

if TYPE_CHECKING:  # Playwright is imported when a browser starts, not when this module loads
    from playwright.sync_api import Page


def require_chromium() -> None:
    """Skip (locally) or fail (in CI) when Debian's Chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (install it with: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium_page(*, width: int = 1400, height: int = 1000, extra_args: tuple[str, ...] = (),
                  downloads: bool = False, javascript: bool = True) -> Iterator[Page]:
    """A fresh Chromium page (new browser, so no cookies carry over between tests).

    ``extra_args`` are added to Chromium's command line (e.g. ``--host-resolver-rules``);
    ``downloads`` lets the page save downloads (``page.expect_download()``).
    """
    require_chromium()
    with browser.chromium_page(width=width, height=height, extra_args=extra_args,
                               downloads=downloads, javascript=javascript) as page:
        yield page
