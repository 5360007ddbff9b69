"""Entry script: shared chrome, then the chosen page.

Run with ``streamlit run dashboard/app.py``. Pages live in dashboard/views/ (not pages/, which
Streamlit would list by itself), one folder each: ``views/<page>/page.py``, a thin script over
cached, read-only fetches and the pure figure builders beside it. Every page names its URL
path, since each script's file name is the same.
"""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the project root; the
# packages (core, queries, dashboard) are imported from there whether or not it is installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.errors import ConfigError
from core.settings import get_settings
from dashboard import auth, chrome, verdict_view

VIEWS = Path(__file__).parent / "views"

# The favicon is a file of this project: a Material icon name would make every visit fetch
# it from a third-party font host (fails on locked-down networks, and tells that host).
st.set_page_config(page_title="Webhook monitor", page_icon=str(Path(__file__).parent / "static" / "favicon.png"),
                   layout="wide")

try:
    settings = get_settings()
except ConfigError as exc:
    st.error(f"**The dashboard's configuration is invalid**: {exc}", icon=":material/settings:")
    st.stop()


def view(name: str, title: str, icon: str, **options) -> st.Page:
    """The page in ``views/<name>/page.py``, at the URL path ``/<name>``."""
    return st.Page(VIEWS / name / "page.py", title=title, icon=icon, url_path=name, **options)


pages = {
    "Webhooks": [
        view("overview", "Overview", ":material/dashboard:", default=True),
        view("events", "Events", ":material/list:"),
        view("errors", "Errors", ":material/error:"),
        view("funnel", "Funnel", ":material/filter_alt:"),
    ],
    "Operations": [
        view("alerts", "Alerts", ":material/notifications:"),
        view("reconciliation", "Reconciliation", ":material/balance:"),
        view("health", "Health", ":material/health_and_safety:"),
    ],
}


def hold_requested_page() -> None:
    """Before the login form: resolve the page the URL names, with the navigation hidden. The
    URL keeps its page and query parameters while the visitor logs in, so a link opened while
    logged out lands where it points, not on the Overview."""
    st.navigation(pages, position="hidden")


if auth.require_login(settings, before_form=hold_requested_page) == "none":
    st.caption(":material/lock_open: **Login is off** (MONITOR_AUTH=none): allowed only because the "
               "server listens on a loopback address.")
page = st.navigation(pages)
verdict_view.register_pages(pages)
chrome.sidebar()
chrome.status()
chrome.alert_banner()
page.run()
