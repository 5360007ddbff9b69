"""Run the dashboard's entry script in Streamlit's AppTest, the way a browser session would.

    from tests.support.apptest import open_dashboard

    def test_my_page(db, login_off):
        at = open_dashboard("views/reconciliation/page.py")
        assert not at.exception

``login_off`` (a fixture) sets MONITOR_AUTH=none on a loopback address for the whole test, so
later ``at.run()`` calls stay logged in; the login itself is tested in
tests/dashboard/test_auth.py. ``open_dashboard`` forgets cached query results first (each
test builds its own data) and switches to the page given as a path relative to dashboard/.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from dashboard import data

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
TIMEOUT_S = 60


@contextmanager
def server_address(address: str):
    """Pretend the server listens on ``address`` (what st.get_option('server.address') says)."""
    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        yield
    finally:
        config.set_option("server.address", before)


@pytest.fixture
def login_off(monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "none")
    with server_address("127.0.0.1"):
        yield


def new_app() -> AppTest:
    """A fresh AppTest of the entry script, not yet run, with no cached results around."""
    data.refresh()
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)


def open_dashboard(page: str | None = None) -> AppTest:
    """The dashboard after its first run, switched to ``page`` (e.g. "views/events/page.py")."""
    at = new_app().run()
    if page:
        at.switch_page(page).run()
    return at
