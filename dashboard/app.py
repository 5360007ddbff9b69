"""Entry script: shared chrome, then the chosen page.

Run with ``streamlit run dashboard/app.py``. Pages live in dashboard/views/ (not pages/), each
a thin script over cached, read-only fetches and pure figure builders.
"""

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Webhook monitor", page_icon=":material/monitoring:", layout="wide")

pages = {
    "Webhooks": [
        st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(VIEWS / "events.py", title="Events", icon=":material/list:"),
        st.Page(VIEWS / "errors.py", title="Errors", icon=":material/error:"),
        st.Page(VIEWS / "funnel.py", title="Funnel", icon=":material/filter_alt:"),
    ],
    "Operations": [
        st.Page(VIEWS / "reconciliation.py", title="Reconciliation", icon=":material/balance:"),
        st.Page(VIEWS / "health.py", title="Health", icon=":material/health_and_safety:"),
    ],
}
st.navigation(pages).run()
