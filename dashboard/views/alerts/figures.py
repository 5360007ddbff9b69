"""Pure builders for the Alerts page and the critical-alert banner: query rows in, text,
tables and figures out (no ``st.`` here)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.formatting import format_duration
from dashboard.components.charts import TimeRange, apply_layout, empty_figure, time_axis
from dashboard.components.text import markdown_literal

SEVERITY_COLORS = {"critical": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
SILENCE_CHOICES = {"1 hour": 1, "4 hours": 4, "12 hours": 12, "1 day": 24, "3 days": 72, "7 days": 168}
NO_ALERTS = "No alert fired in this window"


def banner_text(critical: pd.DataFrame) -> str | None:
    """The banner shown on every page while critical alerts fire, or None."""
    if critical.empty:
        return None
    count = len(critical)
    first = critical.iloc[0]
    lead = (f"**{count} critical alert{'s' if count > 1 else ''} firing**" if count > 1
            else "**A critical alert is firing**")
    text = f"{lead}: {markdown_literal(first['rule'])}: {markdown_literal(first['summary'])}"
    if count > 1:
        text += f" (and {count - 1} more)"
    if first.get("acknowledged_by"):
        text += f". Acknowledged by {markdown_literal(first['acknowledged_by'])}"
    return text + ". See the Alerts page."


def history_table(history: pd.DataFrame) -> pd.DataFrame:
    """The history rows with readable durations."""
    if history.empty:
        return history
    return history.assign(
        time_to_detect=history["time_to_detect_s"].map(format_duration),
        lasted=history["firing_s"].map(format_duration),
    )


def firing_label(row: dict[str, Any]) -> str:
    """'#12 critical payment_event_failed: 3 failed ...' for a selection list."""
    return f"#{row['id']} {row['severity']} {row['rule']}: {row['summary']}"[:160]


def time_to_detect_chart(history: pd.DataFrame, x_range: TimeRange | None = None) -> go.Figure:
    """Each alert of the window: when it fired and how long detection took, by severity."""
    title = "Time to detect (fired − condition began)"
    if history.empty:
        return empty_figure(title, NO_ALERTS)
    fig = go.Figure()
    for severity, rows in history.groupby("severity", sort=False):
        fig.add_trace(go.Scatter(
            x=pd.to_datetime(rows["fired_at"], utc=True).dt.tz_localize(None), y=rows["time_to_detect_s"],
            mode="markers", name=str(severity), marker={"color": SEVERITY_COLORS.get(str(severity), "#555")},
            customdata=rows[["rule", "id"]].to_numpy(),
            hovertemplate="alert %{customdata[1]} %{customdata[0]}<br>%{y:.1f} s<extra></extra>"))
    apply_layout(fig, title, hovermode="closest")
    fig.update_yaxes(title_text="seconds", rangemode="tozero")
    return time_axis(fig, list(history["fired_at"]), x_range, title="fired (UTC)")
