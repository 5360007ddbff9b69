"""The real dashboard under ``python -m dashboard``, driven by Debian's Chromium through Playwright.

    with streamlit_server(env=password_env("pw")) as server, chromium_page() as page:
        page.goto(server.url)
        log_in(page, "pw")
        open_page(page, "Reconciliation")
        assert not exception_texts(page)

The server runs as a managed process in the repository folder with this process's environment
(so DATABASE_URL says which database it shows) plus ``env``, on a loopback port the kernel
picks (Streamlit binds port 0 and announces the URL, so there is no port to race for).
Chromium is ``/usr/bin/chromium`` (Playwright cannot download browsers here).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from devharness.process import ManagedProcess, http_ready, line_ready

if TYPE_CHECKING:  # Playwright is imported when a browser starts, not when this module loads
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
EXCEPTION_SELECTOR = '[data-testid="stException"]'
PLOTLY_SELECTOR = ".js-plotly-plot"


def password_env(password: str) -> dict[str, str]:
    """Environment for a server that asks for ``password`` (and never for an OIDC login)."""
    from core.passwords import hash_password

    return {"MONITOR_AUTH": "password", "MONITOR_PASSWORD_HASH": hash_password(password)}


@dataclass
class StreamlitServer:
    url: str
    process: ManagedProcess

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def log(self) -> str:
        """Everything the server printed so far (for assertion messages)."""
        return self.process.log()


# Streamlit binds port 0 itself (a port the kernel picks: nothing to race for) and says which.
_ANNOUNCED_URL = line_ready(r"URL: (http://127\.0\.0\.1:\d+)")


def _streamlit_healthy(process: ManagedProcess) -> str | None:
    """The server's URL once it announced it and /_stcore/health answers "ok"."""
    announced = _ANNOUNCED_URL(process)
    if not announced:
        return None
    url = announced.group(1)
    return url if http_ready(f"{url}/_stcore/health")(process) else None


_streamlit_healthy.__doc__ = "announces its URL and /_stcore/health answers"


@contextmanager
def streamlit_server(*, env: dict[str, str] | None = None, app: str | None = None,
                     timeout_s: float = 90) -> Iterator[StreamlitServer]:
    """The dashboard as administrators start it (``python -m dashboard``), or ``streamlit run
    app`` for another script, on a loopback port of the kernel's choice; stopped on exit."""
    command = [
        sys.executable, *(["-m", "dashboard"] if app is None else ["-m", "streamlit", "run", app]),
        "--server.headless", "true", "--server.address", "127.0.0.1",
        "--server.port", "0", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]
    with ManagedProcess(command, name="streamlit", cwd=REPO, extra_env=env, ready=_streamlit_healthy,
                        timeout_s=timeout_s) as process:
        yield StreamlitServer(process.ready_value, process)


@contextmanager
def chromium_page(*, width: int = 1400, height: int = 1000, extra_args: tuple[str, ...] = (),
                  downloads: bool = False, javascript: bool = True, profile: Path | None = None) -> Iterator[Page]:
    """A fresh Chromium page (new browser, so no cookies carry over between uses).

    ``extra_args`` are added to Chromium's command line (e.g. ``--host-resolver-rules``);
    ``downloads`` lets the page save downloads (``page.expect_download()``);
    ``javascript=False`` shows a page as a mail client would, running no script;
    ``profile``: a folder that keeps the browser's profile (its cache) from one use to the
    next, as an administrator's own browser does.
    """
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing (install it with: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    options = dict(viewport={"width": width, "height": height}, accept_downloads=downloads,
                   java_script_enabled=javascript)
    with sync_playwright() as playwright:
        if profile is None:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])
            close = browser.close
        else:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], **options)
            close = context.close
        try:
            if profile is None:
                context = browser.new_context(**options)
            if javascript:
                context.add_init_script(RUN_COUNTER_SCRIPT)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            close()


# Counts the app's script runs as the page sees them: each time the app's script state turns to
# "running", and each time it turns back. Installed before the page's own scripts, so no run is missed.
# It also keeps, on the page's own clock (performance.now(), 0 at navigation), when the last click
# happened, when a run last ended and when a Plotly chart last changed: benches time an action from
# these instead of from the harness's waiting, which polls and waits for the app to settle.
RUN_COUNTER_SCRIPT = """
(() => {
  window.__monitorRunsStarted = 0;
  window.__monitorRunsWaited = 0;
  window.__monitorClickAt = 0;
  window.__monitorIdleAt = 0;
  window.__monitorChartAt = 0;
  window.__monitorRunAt = 0;
  let last = null;
  document.addEventListener("click", () => {
    window.__monitorClickAt = performance.now();
    window.__monitorRunAt = 0;
  }, true);
  new MutationObserver(records => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute("data-test-script-state");
    if (state === "running" && last !== "running") {
      window.__monitorRunsStarted += 1;
      if (!window.__monitorRunAt) window.__monitorRunAt = performance.now();
    }
    if (state === "notRunning" && last === "running") window.__monitorIdleAt = performance.now();
    last = state;
    for (const record of records) {
      const target = record.target;
      if (target.closest && target.closest(".js-plotly-plot")) {
        window.__monitorChartAt = performance.now();
        break;
      }
    }
  }).observe(document, {subtree: true, attributes: true, childList: true});
})();
"""
RUN_START_GRACE_MS = 3_000
# A run may be followed by another it asked for (a progress fragment that saw its job finish
# reruns the page): idle counts only once no run has started for this long.
SETTLED_MS = 500
IDLE_SELECTOR = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'


def wait_for_script(page, *, timeout_ms: int = 30_000) -> None:
    """Wait for the script runs that the last action caused, until the app is idle and connected.

    A run starts a moment after a click, later on a busy machine: instead of a fixed pause, this
    waits until the page has seen a run start since the previous wait (up to a few seconds, for an
    action that reruns nothing), then until the app is idle with no further run starting for a
    moment (a run that asks for another one, as a finished background job's progress does).
    """
    try:
        page.wait_for_function("window.__monitorRunsStarted > window.__monitorRunsWaited",
                               timeout=RUN_START_GRACE_MS)
    except Exception as exc:  # no run started: the action reran nothing
        if type(exc).__name__ != "TimeoutError":
            raise
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        page.wait_for_selector(IDLE_SELECTOR, state="attached", timeout=remaining_ms)
        started = page.evaluate("window.__monitorRunsStarted")
        page.wait_for_timeout(SETTLED_MS)
        if page.evaluate("window.__monitorRunsStarted") == started and page.locator(IDLE_SELECTOR).count():
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app did not settle within {timeout_ms} ms")
    page.evaluate("window.__monitorRunsWaited = window.__monitorRunsStarted")


def last_action_ms(page, *, since_navigation: bool = False) -> float:
    """How long the last click took, on the page's own clock: from the click to the end of the
    last run it caused or the last change to a Plotly chart, whichever came later. Read after
    ``wait_for_script``. ``since_navigation``: from the page's navigation instead (a first visit)."""
    return page.evaluate(
        """sinceNavigation => Math.max(window.__monitorIdleAt, window.__monitorChartAt)
                               - (sinceNavigation ? 0 : window.__monitorClickAt)""",
        since_navigation)


def last_action_phases(page, *, since_navigation: bool = False) -> dict[str, float]:
    """``last_action_ms`` in three parts, in milliseconds: ``to_run`` from the click (or the
    navigation) until the first run started, ``running`` until the last run ended, and
    ``drawing`` until the last chart change after that (0 when the charts were done first)."""
    return page.evaluate(
        """sinceNavigation => {
             const start = sinceNavigation ? 0 : window.__monitorClickAt;
             const run = window.__monitorRunAt || start;
             const idle = window.__monitorIdleAt;
             return {to_run: run - start, running: idle - run,
                     drawing: Math.max(0, window.__monitorChartAt - idle)};
           }""",
        since_navigation)


def log_in(page, password: str) -> None:
    """Fill the dashboard's password form and wait for the app behind it."""
    wait_for_script(page)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    wait_for_script(page)


def open_page(page, title: str) -> None:
    """Click a page's entry in the sidebar navigation and wait for it to render."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_for_script(page)


def wait_for_count(page, selector: str, at_least: int, *, timeout_ms: int = 30_000) -> int:
    """Wait until ``selector`` matches at least ``at_least`` elements; return the count seen.

    Plotly charts draw one after another after the script run ends, so one match is not all.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    count = page.locator(selector).count()
    while count < at_least and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        count = page.locator(selector).count()
    return count


def exception_texts(page) -> list[str]:
    """The text of every exception box on the page (empty when there is none)."""
    return page.locator(EXCEPTION_SELECTOR).all_inner_texts()
