"""Pure builders for the Errors page: DataFrames of ``queries/errors.sql`` in, figures and
display tables out (no ``st.`` here)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import plotly.graph_objects as go

from core.error_policy import CATEGORIES, RECOVERY_ACTIONS
from dashboard.components.charts import TimeRange, apply_layout, bar_pad, empty_figure, time_axis

CATEGORY_COLORS = {
    "network": "#4C78A8",
    "database": "#F58518",
    "stripe": "#7A5195",
    "validation": "#E45756",
    "unknown": "#9D9D9D",
}
NEEDS_PERSON = "needs a person"
OUTCOME_COLORS = {"still_failing": "#c62828", "retrying": "#f9a825", "recovered": "#2e7d32"}
OUTCOME_LABELS = {"still_failing": "still failing", "retrying": "retrying", "recovered": "recovered"}


def failures_by_category_chart(failures: pd.DataFrame, *, bucket: str = "hour",
                               x_range: TimeRange | None = None) -> go.Figure:
    """Stacked bars of failed attempts per bucket by error category (rows of
    ``failed_attempts_by_bucket_and_category``), categories in the policy's order."""
    title = f"Failed attempts per {bucket} by category"
    if failures.empty:
        return empty_figure(title, "No failed attempts in this window")
    fig = go.Figure()
    present = set(failures["category"])
    for category in [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES)):
        rows = failures[failures["category"] == category]
        fig.add_bar(x=rows["bucket"], y=rows["failed"], name=category,
                    marker_color=CATEGORY_COLORS.get(category))
    fig.update_yaxes(title_text="failed attempts", rangemode="tozero")
    time_axis(fig, failures["bucket"], x_range, pad=bar_pad(bucket))
    return apply_layout(fig, title, barmode="stack")


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
    time_axis(fig, failures["bucket"], x_range, pad=bar_pad(bucket))
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


def next_step(row: pd.Series, *, now: datetime | None = None) -> str:
    """What happens next to a group: the next planned retry, 'needs a person', or 'recovered'."""
    still_failing = int(row.get("still_failing") or 0)
    if still_failing == 0:
        return "recovered" if int(row.get("recovered") or 0) else "-"
    planned = row.get("next_retry_at")
    needs_person = int(row.get("needs_person") or 0)
    parts = []
    if planned is not None and not pd.isna(planned):
        when = pd.Timestamp(planned).tz_convert("UTC")
        due = now is not None and when <= pd.Timestamp(now)
        parts.append("retry due now" if due else f"next retry {when:%Y-%m-%d %H:%M} UTC")
    if needs_person:
        parts.append(f"{needs_person:,} {NEEDS_PERSON}" if parts else NEEDS_PERSON)
    return "; ".join(parts)


def error_groups_table(groups: pd.DataFrame, *, now: datetime | None = None) -> pd.DataFrame:
    """The error groups as the page shows them: plain columns, the recovery action in words
    and the next step ('next retry ...' or 'needs a person')."""
    columns = ["fingerprint", "category", "failed_attempts", "events", "recovered", "still_failing",
               "next", "recovery_action", "first_seen", "last_seen", "event_types", "example"]
    if groups.empty:
        return pd.DataFrame(columns=columns)
    table = groups.copy()
    table["next"] = [next_step(row, now=now) for _, row in table.iterrows()]
    table["recovery_action"] = [RECOVERY_ACTIONS.get(action, "-") if isinstance(action, str) else "-"
                                for action in table["recovery_action"]]
    return table[columns]


def plan_summary(plan: pd.DataFrame) -> dict[str, int]:
    """Totals of ``failure_plan``: failed events with a retry planned and needing a person."""
    if plan.empty:
        return {"retry_planned": 0, "needs_person": 0}
    return {"retry_planned": int(plan["retry_planned"].sum()), "needs_person": int(plan["needs_person"].sum())}
