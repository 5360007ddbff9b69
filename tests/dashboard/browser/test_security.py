"""Attacks a browser makes, made by Chromium against the real dashboard."""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import streamlit

from devharness.browser import (
    PLOTLY_SELECTOR,
    exception_texts,
    open_page,
    password_env,
    streamlit_server,
    wait_for_count,
    wait_for_script,
)
from devharness.http_sink import HttpSink
from jobs.reconcile import reconciler as reconcile
from jobs.stripe_gateway import gateway_from_settings
from tests.support.browser import chromium_page
from tests.support.factories import add_event

pytestmark = pytest.mark.browser

LOGIN_OFF = {"MONITOR_AUTH": "none"}


def test_dns_rebinding_is_refused_when_login_is_off(db):
    """A page on evil.example whose name resolves to 127.0.0.1 reaches the server, but is refused."""
    with streamlit_server(env=LOGIN_OFF) as server:
        port = server.url.rsplit(":", 1)[1]
        with chromium_page(extra_args=("--host-resolver-rules=MAP evil.example 127.0.0.1",)) as page:
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


def test_external_text_loads_nothing_while_pages_render(db, stripe_server):
    """Markdown images and HTML in a client_reference_id and an event type stay text: no
    request reaches a local HTTP sink while Overview, Errors and Reconciliation render."""
    now = datetime.now(timezone.utc)
    with HttpSink() as sink:
        hostile_ref = (f"![x]({sink.base_url}/pixel-ref) <img src={sink.base_url}/img-ref> "
                       f"[link]({sink.base_url}/link)")
        hostile_type = f"![t]({sink.base_url}/pixel-type)<img src=\"{sink.base_url}/img-type\">"
        stripe_server.add_session(id="cs_test_hostile", created=int(now.timestamp()) - 600,
                                  client_reference_id=hostile_ref, status="complete")
        reconcile.run(db, now=now, gateway=gateway_from_settings(), trigger="cli")
        with db.begin() as conn:
            add_event(conn, created_at=now - timedelta(minutes=5), event_type=hostile_type)
            add_event(conn, created_at=now - timedelta(minutes=4), event_type=hostile_type, status="failed",
                      error="boom", duration_ms=5)
        with streamlit_server(env=LOGIN_OFF) as server, chromium_page() as page:
            page.goto(server.url)
            wait_for_script(page)
            wait_for_count(page, PLOTLY_SELECTOR, 4)
            for title in ("Errors", "Reconciliation"):
                open_page(page, title)
                wait_for_count(page, PLOTLY_SELECTOR, 1)
            page.wait_for_timeout(1500)  # images load after the script run ends
            body = page.locator('[data-testid="stApp"]').inner_text()
            assert not exception_texts(page)
            assert "client_reference_id ![x](" in body  # the reason is there, as typed
        assert sink.received == []


CRASHING_APP = '''
import streamlit as st

st.title("About to fail")
raise RuntimeError("secret detail: SELECT * FROM registrations WHERE password = 'hunter2'")
'''


def test_a_crash_shows_visitors_no_details(tmp_path):
    app = tmp_path / "crashing_app.py"
    app.write_text(CRASHING_APP)
    with streamlit_server(app=str(app)) as server, chromium_page() as page:
        page.goto(server.url)
        wait_for_script(page)
        shown = " ".join(exception_texts(page))
        assert shown  # the crash is reported ...
        body = page.locator('[data-testid="stApp"]').inner_text()
        for detail in ("secret detail", "hunter2", "RuntimeError", str(tmp_path), "Traceback", ".py"):
            assert detail not in body  # ... without what went wrong or where
        assert "secret detail" in server.log()  # the administrator finds it in the log


def test_the_table_toolbar_csv_carries_no_formula(db):
    """The CSV that Streamlit's own table toolbar downloads has formula cells defused."""
    now = datetime.now(timezone.utc)
    formula = '=HYPERLINK("http://127.0.0.1:9/x","click")'
    with db.begin() as conn:
        add_event(conn, created_at=now - timedelta(minutes=5), event_type=formula, event_id="evt_formula",
                  status="failed", error="+cmd|' /C calc'!A0", duration_ms=3)
    with streamlit_server(env=LOGIN_OFF) as server, chromium_page(downloads=True) as page:
        # Streamlit saves through the File System Access picker when the browser has one; a
        # headless browser cannot answer a picker, so take the plain download path instead.
        page.add_init_script("delete window.showSaveFilePicker;")
        page.goto(server.url)
        wait_for_script(page)
        open_page(page, "Events")
        table = page.locator('[data-testid="stDataFrame"]').first
        table.hover()
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download as CSV").first.click()
        csv_text = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    assert "evt_formula" in csv_text
    assert "'=HYPERLINK" in csv_text and ",=HYPERLINK" not in csv_text and '"=HYPERLINK' not in csv_text
    assert "'+cmd" in csv_text


@contextmanager
def other_local_site(dashboard_url: str, folder: Path) -> Iterator[str]:
    """Another site on this machine serving Streamlit's own (public) frontend, pointed at the
    dashboard: its websocket goes to the dashboard, and the browser sends the dashboard's
    cookies along (another port of 127.0.0.1 is the same site). Yields the site's URL."""
    static = Path(streamlit.__file__).parent / "static"
    for entry in static.iterdir():
        (folder / entry.name).symlink_to(entry)
    (folder / "index.html").unlink()
    inject = f'<script>window.__streamlit = {{BACKEND_BASE_URL: "{dashboard_url}"}};</script>'
    (folder / "index.html").write_text((static / "index.html").read_text().replace("<head>", "<head>" + inject, 1))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("env", [password_env("pw"), LOGIN_OFF], ids=["password", "login off"])
def test_a_page_of_another_local_site_cannot_open_the_dashboards_websocket(db, env, tmp_path):
    with streamlit_server(env=env) as server, other_local_site(server.url, tmp_path) as other_site:
        with chromium_page() as page:
            # Streamlit's HTTP endpoints refuse another origin (CORS), so its stock frontend would
            # stop at its health check; an attacker's copy simply skips it. A websocket is not
            # subject to CORS: the one opened below is the browser's own, with the other site's Origin.
            def allow_other_origin(route):
                response = route.fetch()
                route.fulfill(response=response,
                              headers={**response.headers, "access-control-allow-origin": other_site})

            for endpoint in ("health", "host-config"):
                page.route(f"{server.url}/_stcore/{endpoint}", allow_other_origin)
            page.goto(other_site + "/")
            wait_for_script(page)
            body = page.locator('[data-testid="stApp"]').inner_text()
            assert "Refused" in body and other_site in body, body
            assert page.get_by_label("Password", exact=True).count() == 0
            assert page.locator('[data-testid="stMetric"]').count() == 0
            # The dashboard's own page still works.
            page.goto(server.url)
            wait_for_script(page)
            assert "Refused" not in page.locator('[data-testid="stApp"]').inner_text()
