"""Pure figure builders for the Overview: event volume, failure rate, statuses and event types
(rows of ``queries/events.sql`` in, Plotly figures out; no Streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.components.charts import (
    LEGEND_BESIDE,
    STATUS_COLORS,
    STATUS_LABELS,
    STATUSES,
    TimeRange,
    apply_layout,
    bar_pad,
    empty_figure,
    mark_partial_bucket,
    time_axis,
)

UNFINISHED_LABEL = f"{STATUS_LABELS['pending']} or {STATUS_LABELS['processing']}"


def volume_chart(buckets: pd.DataFrame, *, bucket: str = "hour", x_range: TimeRange | None = None) -> go.Figure:
    """Stacked bars of events per bucket by status (rows of ``events_by_bucket``)."""
    title = f"Events per {bucket} by status"
    if buckets.empty or buckets[STATUSES].to_numpy().sum() == 0:
        return empty_figure(title)
    fig = go.Figure()
    for status in STATUSES:
        fig.add_bar(x=buckets["bucket"], y=buckets[status], name=STATUS_LABELS[status],
                    marker_color=STATUS_COLORS[status])
    fig.update_yaxes(title_text="events", rangemode="tozero")
    time_axis(fig, buckets["bucket"], x_range, pad=bar_pad(bucket))
    mark_partial_bucket(fig, bucket, x_range)
    apply_layout(fig, title, barmode="stack")
    return fig.update_layout(legend=LEGEND_BESIDE)


def failure_rates(buckets: pd.DataFrame) -> pd.Series:
    """failed ÷ (completed + failed) per bucket; NaN where nothing finished."""
    finished = (buckets["completed"] + buckets["failed"]).astype("float64")
    return buckets["failed"].astype("float64") / finished.where(finished > 0)


def failure_rate_chart(buckets: pd.DataFrame, *, bucket: str = "hour",
                       x_range: TimeRange | None = None) -> go.Figure:
    """Failure rate per bucket as a line; buckets where nothing finished are gaps."""
    title = f"Failure rate per {bucket}"
    if buckets.empty:
        return empty_figure(title)
    rates = failure_rates(buckets)
    if rates.notna().sum() == 0:
        return empty_figure(title, "No finished events in this window")
    fig = go.Figure(go.Scatter(x=buckets["bucket"], y=rates, mode="lines+markers", name="failure rate",
                               line=dict(color=STATUS_COLORS["failed"]), connectgaps=False))
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title_text="failed ÷ finished")
    time_axis(fig, buckets["bucket"], x_range)
    return apply_layout(fig, title)


def status_chart(statuses: pd.DataFrame) -> go.Figure:
    """Horizontal bars of events per status, each with its count and share (columns
    ``processing_status``, ``events``). Bars, not a donut: lengths compare at a glance."""
    title = "Status breakdown"
    statuses = statuses[statuses["events"] > 0] if not statuses.empty else statuses
    if statuses.empty:
        return empty_figure(title)
    total = int(statuses["events"].sum())
    statuses = statuses.iloc[::-1]  # the first status at the top
    counts = [int(n) for n in statuses["events"]]
    fig = go.Figure(go.Bar(
        y=[STATUS_LABELS.get(s, s) for s in statuses["processing_status"]], x=counts, orientation="h",
        text=[f"{n:,} ({n / total:.1%})" for n in counts], textposition="auto",
        marker_color=[STATUS_COLORS.get(s, "#9e9e9e") for s in statuses["processing_status"]],
        hovertemplate="%{y}: %{x:,} events<extra></extra>"))
    fig.update_xaxes(title_text="events", rangemode="tozero")
    return apply_layout(fig, title, hovermode=False, showlegend=False)


def event_types_chart(types: pd.DataFrame, *, top: int = 15) -> go.Figure:
    """Horizontal bars per event type: completed, failed and the rest (rows of ``event_types``)."""
    title = "Event types"
    if types.empty:
        return empty_figure(title)
    types = types.nlargest(top, "events").iloc[::-1]  # largest at the top
    other = types["events"] - types["completed"] - types["failed"]
    fig = go.Figure()
    for name, values, color in [(STATUS_LABELS["completed"], types["completed"], STATUS_COLORS["completed"]),
                                (STATUS_LABELS["failed"], types["failed"], STATUS_COLORS["failed"]),
                                (UNFINISHED_LABEL, other, STATUS_COLORS["processing"])]:
        fig.add_bar(y=types["event_type"], x=values, name=name, orientation="h", marker_color=color)
    fig.update_xaxes(title_text="events")
    return apply_layout(fig, title, barmode="stack", hovermode="y unified")
