"""Links between pages, and to the Stripe Dashboard.

A page opened from a link (``/events?view=stuck``) starts with the filters the link names,
once; after that the widgets are the user's again.

Streamlit keeps query parameters in the URL, so applying them on every rerun would undo
every change the user makes. Each set of parameters is applied the first time a page sees
it (remembered in the session), and only to widgets the page names.
"""

from __future__ import annotations

import re
from typing import Iterable

_APPLIED = "_links_applied"
EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,255}$")
SESSION_ID = re.compile(r"^cs_(test|live)_[A-Za-z0-9_]{1,255}$")


def fresh_params(page: str, names: Iterable[str]) -> dict[str, list[str]]:
    """The query parameters among ``names`` when this page has not applied them yet, else {}."""
    import streamlit as st

    params = {name: st.query_params.get_all(name) for name in names if st.query_params.get_all(name)}
    signature = (page, tuple(sorted((k, tuple(v)) for k, v in params.items())))
    applied = st.session_state.setdefault(_APPLIED, {})
    if not params:
        applied.pop(page, None)  # visited without a link: the same link later applies again
        return {}
    if applied.get(page) == signature:
        return {}
    applied[page] = signature
    return params


def stripe_event_url(event_id: str, livemode: bool) -> str | None:
    """The event's page in the Stripe Dashboard (test or live), or None for an odd id."""
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        return None
    return f"https://dashboard.stripe.com/{'' if livemode else 'test/'}events/{event_id}"


def stripe_session_url(session_id: str, livemode: bool | None = None) -> str | None:
    """The Checkout Session's page in the Stripe Dashboard, or None for an odd id.

    The mode comes from the id itself (``cs_test_``/``cs_live_``) when ``livemode`` is None.
    """
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        return None
    live = session_id.startswith("cs_live_") if livemode is None else bool(livemode)
    return f"https://dashboard.stripe.com/{'' if live else 'test/'}checkout/sessions/{session_id}"
