"""The sidebar every page shares: window selector, auto-refresh, refresh button.

Called by the entry script before the chosen page runs; the resolved window is stored in
``st.session_state`` where ``dashboard.data.current_window()`` reads it. Widget values live
under fixed keys, so the choice survives switching pages.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboard import data
from dashboard.window import CHOICES, CUSTOM, resolve_window

AUTO_REFRESH = {"Off": None, "Every minute": 60, "Every 5 minutes": 300, "Every 15 minutes": 900}
WINDOW_WIDGET = "window_choice"
CUSTOM_WIDGET = "window_custom"
AUTO_REFRESH_WIDGET = "auto_refresh"


def sidebar() -> None:
    """Draw the shared controls and store the chosen window for the page."""
    now = data.utc_now()
    with st.sidebar:
        choice = st.segmented_control("Window", CHOICES, default="24h", key=WINDOW_WIDGET,
                                      help="Time range every page shows (UTC).") or "24h"
        custom = None
        if choice == CUSTOM:
            today = now.date()
            picked = st.date_input("Dates (UTC)", value=(today - timedelta(days=6), today),
                                   max_value=today, key=CUSTOM_WIDGET)
            # While the user has picked only the first date of the range, show that day alone.
            picked = tuple(picked) if isinstance(picked, (tuple, list)) else (picked,)
            custom = (picked[0], picked[-1]) if picked else (today, today)
        window = resolve_window(choice, now, custom=custom)
        st.session_state[data.WINDOW_KEY] = window
        st.caption(f"{window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC")

        interval = AUTO_REFRESH[st.selectbox("Auto-refresh", list(AUTO_REFRESH), key=AUTO_REFRESH_WIDGET)]
        if st.button("Refresh now", icon=":material/refresh:", help="Read fresh data now", width="stretch"):
            data.refresh()
    if interval:
        _auto_refresh(interval)


def _auto_refresh(seconds: int) -> None:
    # A timed fragment that reruns the whole app. Its first run is part of the full run and
    # must not rerun again (that would loop); later timed runs trigger the full rerun. The
    # cache's ttl (60 s) is no longer than any interval, so each refresh reads new data.
    st.session_state["_auto_refresh_in_full_run"] = True

    @st.fragment(run_every=seconds)
    def tick() -> None:
        if st.session_state.pop("_auto_refresh_in_full_run", False):
            return
        st.rerun(scope="app")

    tick()


def status() -> None:
    """The status verdict in the sidebar, each reason linking to its page."""
    from dashboard import verdict_view

    try:
        verdict = data.verdict()
    except data.DatabaseProblem:
        return  # the page itself says what is wrong with the database
    verdict_view.sidebar(verdict)


def alert_banner() -> None:
    """A banner on every page while a critical alert fires (the page itself reports a database problem)."""
    from dashboard.views.alerts.figures import banner_text

    try:
        text = banner_text(data.fetch("critical_alerts_firing"))
    except data.DatabaseProblem:
        return
    if text:
        st.error(text, icon=":material/notifications_active:")
