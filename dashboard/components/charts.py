"""What every chart of the dashboard shares: the status colours and words, the layout, the
time axis, the shaded partial bucket and the figure that says there is no data.

The pages' own figure builders (``dashboard/views/<page>/figures.py``) are built on these. All
of them are pure: a query's DataFrame in, a Plotly Figure out (no Streamlit here). Every
builder accepts an empty frame and returns a figure that says there is no data, so a page
never has to special-case a chart. Colours are fixed per status so "failed" is the same red
on every page.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

import pandas as pd
import plotly.graph_objects as go

STATUSES = ["completed", "failed", "processing", "pending"]
STATUS_COLORS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "processing": "#f9a825",
    "pending": "#90a4ae",
}
# The one wording of each status on every chart and table (the database's names stay as they are).
STATUS_LABELS = {
    "completed": "completed",
    "failed": "failed",
    "processing": "processing",
    "pending": "pending",
}
NO_DATA = "No data in this window"
TIME_AXIS_TITLE = "time (UTC)"
BUCKET_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
TimeRange = tuple[datetime, datetime]


def apply_layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    """The look every dashboard chart shares: title, tight margins, unified hover by default."""
    kwargs.setdefault("hovermode", "x unified")
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50, b=10), legend_title_text="", **kwargs)
    # One number format on every chart: 11,474 (never Plotly's "11.474k" beside a "9259" tile).
    # Both are ignored by date axes and leave a percent tickformat alone.
    fig.update_xaxes(separatethousands=True, exponentformat="none")
    fig.update_yaxes(separatethousands=True, exponentformat="none")
    return fig


def bucket_start(moment, bucket: str) -> pd.Timestamp:
    """The start of the ``bucket`` ('hour' or 'day', UTC) that ``moment`` falls in."""
    return _naive_utc(moment).floor("D" if bucket == "day" else "h")


def mark_partial_bucket(fig: go.Figure, bucket: str, x_range: TimeRange | None) -> go.Figure:
    """Shade the last bucket when the window ends inside it: it is still filling up, so its
    lower bar is not a drop in traffic."""
    if x_range is None:
        return fig
    end = _naive_utc(x_range[1])
    start = bucket_start(x_range[1], bucket)
    if start >= end:
        return fig
    # Bars are centred on their bucket's start, so the shaded band is centred there too.
    half = BUCKET_LENGTH.get(bucket, timedelta(hours=1)) / 2
    fig.add_vrect(x0=start - half, x1=start + half, fillcolor="#90a4ae", opacity=0.18, line_width=0)
    # The label ends at the band's right edge and reads leftwards, inside the plot area: begun
    # at the band's left edge it ran past the plot's right side, over the legend beside it.
    fig.add_annotation(text=f"this {bucket} so far", x=start + half, xref="x", xanchor="right",
                       y=1, yref="paper", yanchor="top", showarrow=False,
                       font=dict(size=11, color="#607d8b"), bgcolor="rgba(255,255,255,0.8)")
    return fig


# The legend beside the plot area, right of it (Plotly's default place, said explicitly so
# that nothing drawn inside the plot, such as the partial bucket's label, can reach it).
LEGEND_BESIDE = dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top")


def _naive_utc(moment) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def time_axis(fig: go.Figure, x: Sequence, x_range: TimeRange | None = None, *,
              pad: timedelta | None = None, title: str = TIME_AXIS_TITLE) -> go.Figure:
    """Title the time axis as UTC and, given the window, stretch it over the whole window.

    Plotly zooms to the data otherwise: the last failure at 18:00 in a window ending at 22:00
    would look like the latest data, and one lone point gets millisecond ticks. ``pad`` keeps
    the first and last bars whole (a bar is centred on its bucket's start); by default a
    fiftieth of the range, so a marker at either end is not cut in half.
    """
    fig.update_xaxes(title_text=title)
    stamps = [_naive_utc(v) for v in x if not pd.isna(v)]
    if x_range is not None and stamps:
        start, end = (_naive_utc(v) for v in x_range)
        start, end = min(start, min(stamps)), max(end, max(stamps))
        pad = (end - start) / 50 if pad is None else pad
        fig.update_xaxes(range=[start - pad, end + pad])
    return fig


def bar_pad(bucket: str) -> timedelta:
    return BUCKET_LENGTH.get(bucket, timedelta(hours=1)) / 2


def empty_figure(title: str, message: str = NO_DATA) -> go.Figure:
    """A chart without axes that says ``message`` where the data would be."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#607d8b"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return apply_layout(fig, title)


class FigureMemo:
    """Built figures kept per builder and inputs, for every session of the server.

    Building a Plotly figure costs 10–50 ms (Plotly validates every property it is given),
    and a page of four charts pays it on every run: each click, each window switch, each
    refresh, although the query results behind a chart change at most once a minute (the
    cache's ttl). Kept here, a figure is built once per distinct input. Inputs are compared
    by value (a DataFrame by its columns, types and a hash of every row in order), never by
    identity: cached query results come back as copies.

    ``finish`` runs once on a newly built figure before it is kept (the escaping of outside
    text); a kept figure must not be changed by its callers (``st.plotly_chart`` copies it).
    """

    def __init__(self, max_entries: int = 128):
        self.max_entries = max_entries
        self._figures: OrderedDict[tuple, go.Figure] = OrderedDict()
        self._lock = threading.Lock()

    def figure(self, builder: Callable[..., go.Figure], *args: Any,
               finish: Callable[[go.Figure], go.Figure] = lambda fig: fig, **kwargs: Any) -> go.Figure:
        try:
            key = (builder.__module__, builder.__qualname__, finish.__module__, finish.__qualname__,
                   _fingerprint(args), _fingerprint(kwargs))
        except TypeError:  # an input that cannot be compared by value: build it every time
            return finish(builder(*args, **kwargs))
        with self._lock:
            kept = self._figures.get(key)
            if kept is not None:
                self._figures.move_to_end(key)
                return kept
        fig = finish(builder(*args, **kwargs))
        with self._lock:
            self._figures[key] = fig
            while len(self._figures) > self.max_entries:
                self._figures.popitem(last=False)
        return fig

    def clear(self) -> None:
        """Forget every kept figure (benches timing a page's first render)."""
        with self._lock:
            self._figures.clear()


def _fingerprint(value: Any) -> Any:
    """A hashable stand-in for ``value`` that is equal exactly when the values are
    (TypeError for a value it cannot vouch for)."""
    if isinstance(value, (pd.DataFrame, pd.Series)):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        rows = pd.util.hash_pandas_object(frame, index=True).to_numpy()
        return ("frame", tuple(map(str, frame.columns)), tuple(map(str, frame.dtypes)), frame.shape,
                hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_fingerprint(item) for item in value))
    if isinstance(value, dict):
        return ("dict", *sorted((str(key), _fingerprint(item)) for key, item in value.items()))
    if value is None or isinstance(value, (str, int, float, bool, datetime, timedelta, pd.Timestamp)):
        return (type(value).__name__, repr(value))
    raise TypeError(f"cannot compare {type(value).__name__} by value")


FIGURES = FigureMemo()  # the dashboard's one memo (per server process, shared by sessions)
