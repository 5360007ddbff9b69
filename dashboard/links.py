"""Links between pages: a page opened from a link (``/events?view=stuck``) starts with the
filters the link names, once; after that the widgets are the user's again.

Streamlit keeps query parameters in the URL, so applying them on every rerun would undo
every change the user makes. Each set of parameters is applied the first time a page sees
it (remembered in the session), and only to widgets the page names.
"""

from __future__ import annotations

from typing import Iterable

import streamlit as st

_APPLIED = "_links_applied"


def fresh_params(page: str, names: Iterable[str]) -> dict[str, list[str]]:
    """The query parameters among ``names`` when this page has not applied them yet, else {}."""
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
