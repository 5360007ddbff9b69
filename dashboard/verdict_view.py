"""The status verdict drawn in the sidebar and at the top of the Overview: the state, and
each reason as a link to the page (with its filters) that shows it.

The verdict itself is computed by :mod:`jobs.health.verdict` (the same one ``python -m jobs status``
prints); this module only draws it. Reasons may quote outside text (an error message, an
alert summary), so every label passes through ``markdown_literal``.
"""

from __future__ import annotations

import streamlit as st

from dashboard.components.text import markdown_literal

ICONS = {"healthy": ":material/check_circle:", "degraded": ":material/warning:", "down": ":material/error:"}
_PAGES: dict[str, st.Page] = {}


def register_pages(pages: dict[str, list]) -> None:
    """Remember the navigation's pages by URL path, so reasons can link to them."""
    for group in pages.values():
        for page in group:
            _PAGES[page.url_path or "overview"] = page
            _PAGES.setdefault(page.url_path, page)


SIDEBAR_CHARS = 31  # what the sidebar's default width shows whole, with the ellipsis


def _link(reason, where, *, short: bool = False) -> None:
    page = _PAGES.get(reason.page)
    text = reason.summary
    if short and len(text) > SIDEBAR_CHARS:  # the sidebar is narrow: the whole line is the tooltip
        text = text[:SIDEBAR_CHARS - 1].rstrip() + "…"
    label = markdown_literal(text)
    if page is None:  # outside the app (AppTest of one page): plain text
        where.markdown(f"- {label}")
        return
    where.page_link(page, label=label, icon=":material/arrow_forward:", query_params=reason.query or None,
                    help=markdown_literal(reason.summary) if short else None)


def link_to(page_path: str, label: str, query: dict | None = None, *, where=None) -> None:
    """A link to one of the app's pages (by URL path) with query parameters; nothing when the
    page is not registered (a page run alone, as in AppTest)."""
    page = _PAGES.get(page_path)
    if page is not None:
        (where or st).page_link(page, label=markdown_literal(label), icon=":material/arrow_forward:",
                                query_params=query or None)


def panel(verdict, *, where=None) -> None:
    """The verdict as a coloured box with one link per reason (the Overview's top)."""
    where = where or st
    box = {"healthy": where.success, "degraded": where.warning, "down": where.error}[verdict.state]
    box(f"**{markdown_literal(verdict.headline())}**", icon=ICONS[verdict.state])
    for reason in verdict.reasons:
        _link(reason, where)


def sidebar(verdict) -> None:
    """The verdict in the sidebar: one line, then the reasons as links."""
    with st.sidebar:
        st.markdown(f"{ICONS[verdict.state]} **Status: {verdict.state}**")
        for reason in verdict.reasons:
            _link(reason, st, short=True)
