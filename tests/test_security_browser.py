"""Attacks a browser makes, made by Chromium against the real dashboard."""

from __future__ import annotations

import pytest

from tests.browser_support import chromium_page, exception_texts, streamlit_server, wait_for_script

pytestmark = pytest.mark.browser

LOGIN_OFF = {"MONITOR_AUTH": "none"}


def test_dns_rebinding_is_refused_when_login_is_off(db):
    """A page on evil.example whose name resolves to 127.0.0.1 reaches the server, but is refused."""
    with streamlit_server(env=LOGIN_OFF) as server:
        port = server.url.rsplit(":", 1)[1]
        with chromium_page(extra_args=(f"--host-resolver-rules=MAP evil.example 127.0.0.1",)) as page:
            page.goto(f"http://evil.example:{port}/")
            wait_for_script(page)
            body = page.locator('[data-testid="stApp"]').inner_text()
            assert "Refused" in body and "evil.example" in body
            assert "Overview" not in body and page.locator('[data-testid="stMetric"]').count() == 0
            assert not exception_texts(page)
            # The same server answers its own address normally.
            page.goto(server.url)
            wait_for_script(page)
            assert "Login is off" in page.locator('[data-testid="stApp"]').inner_text()
            assert "Refused" not in page.locator('[data-testid="stApp"]').inner_text()
