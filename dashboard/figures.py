"""Pure figure builders: a query's DataFrame in, a Plotly Figure out (no Streamlit here).

Every builder accepts an empty frame and returns a figure that says there is no data, so a
page never has to special-case a chart. Colours are fixed per status so "failed" is the
same red on every page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

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
UNFINISHED_LABEL = f"{STATUS_LABELS['pending']} or {STATUS_LABELS['processing']}"
OUTCOME_COLORS = {"still_failing": "#c62828", "retrying": "#f9a825", "recovered": "#2e7d32"}
OUTCOME_LABELS = {"still_failing": "still failing", "retrying": "retrying", "recovered": "recovered"}
FUNNEL_STEPS = [("created", "Created"), ("checkout_started", "Checkout started"),
                ("paid", "Paid"), ("completed", "Completed")]
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


def _bar_pad(bucket: str) -> timedelta:
    return BUCKET_LENGTH.get(bucket, timedelta(hours=1)) / 2


def empty_figure(title: str, message: str = NO_DATA) -> go.Figure:
    """A chart without axes that says ``message`` where the data would be."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#607d8b"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return apply_layout(fig, title)


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
    time_axis(fig, buckets["bucket"], x_range, pad=_bar_pad(bucket))
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


def failures_by_type_chart(failures: pd.DataFrame, *, bucket: str = "hour",
                           x_range: TimeRange | None = None) -> go.Figure:
    """Stacked bars of failed events per bucket by event type (rows of
    ``failures_by_bucket_and_type``)."""
    title = f"Failed events per {bucket} by event type"
    if failures.empty:
        return empty_figure(title, "No failed events in this window")
    fig = go.Figure()
    for event_type, rows in failures.groupby("event_type", sort=True):
        fig.add_bar(x=rows["bucket"], y=rows["failed"], name=event_type)
    fig.update_yaxes(title_text="failed events", rangemode="tozero")
    time_axis(fig, failures["bucket"], x_range, pad=_bar_pad(bucket))
    return apply_layout(fig, title, barmode="stack")


def outcomes_chart(outcomes: pd.DataFrame) -> go.Figure:
    """Per event type, events that failed at least once: still failing, retrying, recovered."""
    title = "Failures: still failing vs recovered"
    if outcomes.empty:
        return empty_figure(title, "No failures in this window")
    outcomes = outcomes.iloc[::-1]
    fig = go.Figure()
    for column, label in OUTCOME_LABELS.items():
        fig.add_bar(y=outcomes["event_type"], x=outcomes[column], name=label, orientation="h",
                    marker_color=OUTCOME_COLORS[column])
    fig.update_xaxes(title_text="events")
    return apply_layout(fig, title, barmode="stack", hovermode="y unified")


def funnel_totals(by_bucket: pd.DataFrame) -> dict[str, int]:
    """Step counts over the whole window from ``funnel_by_bucket`` rows."""
    return {step: int(by_bucket[step].sum()) if not by_bucket.empty else 0 for step, _ in FUNNEL_STEPS}


def funnel_chart(totals: dict[str, int]) -> go.Figure:
    """The four funnel steps with the share of the previous step and of the first."""
    title = "Registration funnel"
    if not totals.get("created"):
        return empty_figure(title, "No registrations in this window")
    fig = go.Figure(go.Funnel(y=[label for _, label in FUNNEL_STEPS],
                              x=[totals.get(step, 0) for step, _ in FUNNEL_STEPS],
                              textinfo="value+percent previous+percent initial",
                              marker=dict(color=["#546e7a", "#1e88e5", "#43a047", "#2e7d32"])))
    return apply_layout(fig, title, hovermode=False)


def conversion_rates(by_bucket: pd.DataFrame) -> pd.DataFrame:
    """Per bucket, the share of created registrations that reached each later step."""
    created = by_bucket["created"].astype("float64").where(by_bucket["created"] > 0)
    rates = pd.DataFrame({"bucket": by_bucket["bucket"]})
    for step, _ in FUNNEL_STEPS[1:]:
        rates[step] = by_bucket[step].astype("float64") / created
    return rates


def conversion_chart(by_bucket: pd.DataFrame, *, bucket: str = "day",
                     x_range: TimeRange | None = None) -> go.Figure:
    """Lines of the share of registrations reaching each step, per bucket of creation time."""
    title = f"Conversion per {bucket} (share of registrations created)"
    if by_bucket.empty:
        return empty_figure(title, "No registrations in this window")
    rates = conversion_rates(by_bucket)
    fig = go.Figure()
    for step, label in FUNNEL_STEPS[1:]:
        fig.add_scatter(x=rates["bucket"], y=rates[step], mode="lines+markers", name=label)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05], title_text="of created")
    time_axis(fig, rates["bucket"], x_range, title="registration created (UTC)")
    return apply_layout(fig, title)
