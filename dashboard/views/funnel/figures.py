"""Pure figure builders for the Funnel: registrations created -> checkout started -> paid ->
completed, and conversion over time (rows of ``funnel_by_bucket`` in; no Streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.components.charts import TimeRange, apply_layout, empty_figure, time_axis

FUNNEL_STEPS = [("created", "Created"), ("checkout_started", "Checkout started"),
                ("paid", "Paid"), ("completed", "Completed")]


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
