"""Text from outside (Stripe payloads, the app's rows, error messages) shown as text.

Streamlit renders Markdown in headings, messages and captions (links, images, ``:color[...]``
directives, LaTeX), and Plotly renders a subset of HTML in labels (``<a href>``, ``<b>``,
``<br>``). A ``client_reference_id`` such as ``![x](http://tracker/pixel)`` would otherwise
load a remote image when the page is drawn. Every value that did not come from this code
passes through one of these before it is drawn:

- ``markdown_literal(value)`` inside any Markdown string (``st.markdown``, ``st.subheader``,
  ``st.error``, ...);
- ``plotly_literal(value)`` for axis categories, legend names, hover text and hover data
  (``customdata``), applied to every figure where it is drawn (``chart``);
- ``markdown_literal(value)`` also for every tooltip (``help=``), which Streamlit renders as
  Markdown;
- tables (``st.dataframe``) show cells as text already; ``dataframe()`` below defuses
  spreadsheet formulas in them and shows every empty cell as "–".
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable

import pandas as pd

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of
# the ones Markdown, Streamlit's directives (:red[...], :material/x:) and LaTeX ($) use
# keeps the text literal without having to know which construct it could start.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~:$&\"'=^])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def markdown_literal(value: Any) -> str:
    """``value`` as text that Markdown shows literally, on one line (no links, images, HTML)."""
    text = "" if value is None else str(value)
    text = _LINE_BREAKS.sub(" ", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def plotly_literal(value: Any) -> Any:
    """``value`` for a Plotly label: HTML-like markup shown as typed, not rendered.

    Plotly decodes entities, so an escaped ``<a href=...>`` is drawn as those characters.
    Non-strings (numbers, dates, missing values) come back unchanged.
    """
    if not isinstance(value, str):
        return value
    return html.escape(value, quote=False)


def plotly_literal_column(series: pd.Series) -> pd.Series:
    """``plotly_literal`` over a column of labels (text columns only)."""
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        return series.map(plotly_literal)
    return series


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection:
# https://owasp.org/www-community/attacks/CSV_Injection); a leading ' makes it text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe_value(value: Any) -> Any:
    """A string a spreadsheet would run as a formula, prefixed with ``'``; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (numbers are untouched)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(formula_safe_value)
    return safe


MISSING_TEXT = "–"


def fill_missing_text(frame: pd.DataFrame, *, keep: Iterable[str] = ()) -> pd.DataFrame:
    """A copy whose empty text cells read "–" instead of Streamlit's grey "None" (numbers and
    times keep their type, and their column's format). Columns in ``keep`` stay as they are
    (a link column: "–" there would be drawn as a link to "–")."""
    filled = frame.copy()
    keep = set(keep)
    for column in filled.columns:
        if column in keep:
            continue
        text = filled[column].dtype == object or pd.api.types.is_string_dtype(filled[column])
        if text and filled[column].isna().any():
            filled[column] = filled[column].astype(object).where(filled[column].notna(), MISSING_TEXT)
    return filled


def link_columns(column_config: dict | None) -> list[str]:
    """The columns a ``column_config`` shows as links (``st.column_config.LinkColumn``)."""
    return [name for name, config in (column_config or {}).items()
            if isinstance(config, dict) and (config.get("type_config") or {}).get("type") == "link"]


def dataframe(frame: pd.DataFrame, *, where=None, **kwargs):
    """``st.dataframe`` for every table the dashboard shows: its cells formula-safe, so the
    table toolbar's CSV download cannot carry a formula into a spreadsheet, and every empty
    cell (text, number, time or link) shows "–", not a grey "None"."""
    import streamlit as st

    kwargs.setdefault("placeholder", MISSING_TEXT)
    shown = fill_missing_text(formula_safe(frame), keep=link_columns(kwargs.get("column_config")))
    return (where or st).dataframe(shown, **kwargs)


# Trace attributes whose strings Plotly draws as (HTML-like) text: category axes, legend
# names, pie labels, bar texts and hover texts.
_FIGURE_TEXT_ATTRIBUTES = ("x", "y", "labels", "text", "hovertext", "name", "legendgroup")


def figure_literal(fig):
    """The figure with every trace's labels and hover data escaped (``plotly_literal``), in
    place; returned.

    Figure builders stay pure and plot values as they are; this runs once, where figures
    are drawn, so no chart can forget it. ``customdata`` is escaped too: a hovertemplate's
    ``%{customdata[i]}`` is drawn as HTML-like text like any label.
    """
    for trace in fig.data:
        if "customdata" in trace and trace.customdata is not None:
            trace.customdata = [[plotly_literal(item) for item in row] if _is_row(row) else plotly_literal(row)
                                for row in trace.customdata]
        for attribute in _FIGURE_TEXT_ATTRIBUTES:
            if attribute not in trace:
                continue
            value = trace[attribute]
            if isinstance(value, str):
                trace[attribute] = plotly_literal(value)
            elif value is not None and not hasattr(value, "keys"):
                items = list(value)
                if any(isinstance(item, str) for item in items):
                    trace[attribute] = [plotly_literal(item) for item in items]
    return fig


def _is_row(value) -> bool:
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")


def chart(builder, *args, key: str, where=None, **kwargs):
    """``st.plotly_chart`` of ``builder(*args, **kwargs)``, a pure figure builder, for every chart
    the dashboard shows, its labels escaped; ``where`` is a container (a column) to draw in.
    The escaped figure is kept for every session while the builder's inputs stay the same
    (``charts.FigureMemo``): a click that reads cached rows does not build its charts again."""
    import streamlit as st

    from dashboard.components.charts import FIGURES

    fig = FIGURES.figure(builder, *args, finish=figure_literal, **kwargs)
    return (where or st).plotly_chart(fig, key=key)


def metric_row(tiles, *, where=None, border: bool = True):
    """Metric tiles side by side, for every row of numbers the dashboard shows. Each tile is
    as wide as its label and value, and the row wraps onto another line when the window is
    narrow: equal columns cut labels and values short ("Success r…", "Failures, last…") on a
    laptop. ``tiles`` are keyword arguments of ``st.metric``; ``where`` is a container to
    draw in."""
    import streamlit as st

    row = (where or st).container(horizontal=True, gap="small")
    for tile in tiles:
        row.metric(**tile, border=border, width="content")
    return row
