"""Pure figure builders and frame shaping for the Health page (no Streamlit here).

Each builder takes the rows of one query in ``queries/health.sql`` and returns a Plotly
figure; an empty frame gives a figure that says there is no data.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.components.charts import STATUS_COLORS, TimeRange, apply_layout, empty_figure, time_axis
from dashboard.metrics import amounts_column

OTHER_TABLES = "other tables"
JOB_STATUS_COLORS = {
    "completed": STATUS_COLORS["completed"],
    "needs_review": "#ef6c00",
    "failed": STATUS_COLORS["failed"],
    "skipped": "#90a4ae",
    "running": "#1565c0",
}
# Job statuses as a reader says them (the stored values are the fixed, snake_case ones).
STATUS_LABELS = {"needs_review": "needs review"}
NO_SNAPSHOTS = "No health snapshot in this window (python -m jobs health-snapshot)"


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def _bytes_axis(fig: go.Figure) -> go.Figure:
    fig.update_yaxes(tickformat=".3~s", ticksuffix="B", rangemode="tozero")
    return fig


def database_size_chart(history: pd.DataFrame, *, x_range: TimeRange | None = None) -> go.Figure:
    """The database's size over time (rows of ``database_size_history``)."""
    title = "Database size"
    if history.empty:
        return empty_figure(title, NO_SNAPSHOTS)
    fig = go.Figure(go.Scatter(x=history["taken_at"], y=history["database_size_bytes"], mode="lines+markers",
                               name="database", line=dict(color="#1565c0"),
                               hovertemplate="%{y:.3~s}B<extra></extra>"))
    time_axis(fig, history["taken_at"], x_range)
    return apply_layout(_bytes_axis(fig), title)


def largest_tables(growth: pd.DataFrame, top: int) -> list[str]:
    """The ``top`` tables by size at the latest snapshot of ``growth``."""
    if growth.empty:
        return []
    latest = growth[growth["taken_at"] == growth["taken_at"].max()]
    return latest.sort_values(["total_bytes", "table_name"], ascending=[False, True])["table_name"].head(top).tolist()


def _top_tables(growth: pd.DataFrame, column: str, top: int) -> pd.DataFrame:
    """taken_at x table frame of ``column`` for the largest tables, the rest summed as one."""
    keep = largest_tables(growth, top)
    named = growth["table_name"].where(growth["table_name"].isin(keep), OTHER_TABLES)
    frame = growth.assign(table_name=named).pivot_table(index="taken_at", columns="table_name",
                                                       values=column, aggfunc="sum", dropna=False)
    ordered = [name for name in keep if name in frame.columns]
    if OTHER_TABLES in frame.columns:
        ordered.append(OTHER_TABLES)
    return frame[ordered]


def table_size_chart(growth: pd.DataFrame, *, top: int = 6, x_range: TimeRange | None = None) -> go.Figure:
    """Stacked areas of each large table's size over time (rows of ``table_growth``)."""
    title = "Size by table (with indexes)"
    if growth.empty:
        return empty_figure(title, NO_SNAPSHOTS)
    frame = _top_tables(growth, "total_bytes", top)
    # An area needs two snapshots to show; until then each table's size is a marker.
    mode = "lines" if len(frame.index) > 1 else "lines+markers"
    fig = go.Figure()
    for name in frame.columns:
        fig.add_scatter(x=frame.index, y=frame[name], name=name, mode=mode, stackgroup="size",
                        hovertemplate="%{y:.3~s}B")
    time_axis(fig, frame.index, x_range)
    return apply_layout(_bytes_axis(fig), title)


def table_rows_chart(growth: pd.DataFrame, *, top: int = 6, x_range: TimeRange | None = None) -> go.Figure:
    """Each large table's estimated row count over time; gaps before PostgreSQL analysed it."""
    title = "Rows by table (PostgreSQL's estimate)"
    if growth.empty or growth["row_estimate"].notna().sum() == 0:
        return empty_figure(title, NO_SNAPSHOTS if growth.empty else "No table analysed by PostgreSQL yet")
    frame = _top_tables(growth.dropna(subset=["row_estimate"]), "row_estimate", top)
    fig = go.Figure()
    for name in frame.columns:
        fig.add_scatter(x=frame.index, y=frame[name], name=name, mode="lines+markers", connectgaps=False)
    fig.update_yaxes(title_text="rows", rangemode="tozero", tickformat=",")
    time_axis(fig, frame.index, x_range)
    return apply_layout(fig, title)


def size_change(history: pd.DataFrame) -> tuple[int | None, int | None]:
    """(latest size, change since the first snapshot in the window), both in bytes."""
    if history.empty:
        return None, None
    ordered = history.sort_values("taken_at")["database_size_bytes"]
    latest, first = int(ordered.iloc[-1]), int(ordered.iloc[0])
    return latest, (latest - first if len(ordered) > 1 else None)


# A run's status is its marker's shape (its colour says which job it was).
JOB_STATUS_SYMBOLS = {
    "completed": "circle",
    "needs_review": "diamond",
    "failed": "x",
    "skipped": "circle-open",
    "running": "triangle-up",
}


JOB_SYMBOL_KEY = "colour: job · ● completed, ✕ failed, ◆ needs review, ○ skipped"


def job_duration_chart(history: pd.DataFrame, *, x_range: TimeRange | None = None) -> go.Figure:
    """Each run's duration by start time: one colour (and legend entry) per job, the run's
    status as the marker's shape (rows of ``job_history``)."""
    title = "Job runs"
    finished = history.dropna(subset=["duration_ms"]) if not history.empty else history
    if finished.empty:
        return empty_figure(title)
    fig = go.Figure()
    for job, runs in finished.groupby("job", sort=True):
        statuses = [status_label(s) for s in runs["status"]]
        fig.add_scatter(x=runs["started_at"], y=runs["duration_ms"] / 1000, mode="markers", name=job,
                        marker=dict(size=9, symbol=[JOB_STATUS_SYMBOLS.get(s, "circle") for s in runs["status"]],
                                    line=dict(width=1)),
                        customdata=[[status] for status in statuses],
                        hovertemplate=f"{job}: %{{y:,.1f}} s, %{{customdata[0]}}<extra></extra>")
    fig.update_yaxes(title_text="duration (s)", rangemode="tozero")
    time_axis(fig, finished["started_at"], x_range, title="run started (UTC)")
    apply_layout(fig, title, hovermode="closest")
    fig.update_layout(title_subtitle_text=JOB_SYMBOL_KEY, margin_t=70)
    return fig


def cleanup_chart(runs: pd.DataFrame) -> go.Figure:
    """Rows each real cleanup run moved to the archives (rows of ``cleanup_history``)."""
    title = "Archived per cleanup run"
    real = runs[~runs["dry_run"]] if not runs.empty else runs
    if real.empty:
        return empty_figure(title, "No cleanup has run for real yet")
    real = real.sort_values("started_at")
    # One bar group per run, evenly spaced however irregular the runs were.
    runs_axis = [f"{moment:%Y-%m-%d %H:%M} #{run_id}" for moment, run_id in zip(real["started_at"], real["id"], strict=True)]
    fig = go.Figure()
    fig.add_bar(x=runs_axis, y=real["events_archived"], name="webhook events", marker_color="#1565c0")
    fig.add_bar(x=runs_axis, y=real["registrations_archived"], name="stale registrations",
                marker_color="#ef6c00")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="rows", rangemode="tozero")
    return apply_layout(fig, title, barmode="group")


def job_runs_table(history: pd.DataFrame) -> pd.DataFrame:
    """Recent runs (rows of ``job_history``) as shown: readable status, duration in seconds."""
    columns = ["id", "job", "status", "trigger", "started_at", "finished_at", "duration_s", "host", "error"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    shown = history.assign(status=history["status"].map(status_label),
                           duration_s=history["duration_ms"].astype("float64") / 1000)
    return shown[columns]


def archived_registrations_table(removed: pd.DataFrame) -> pd.DataFrame:
    """Registrations cleanup removed (rows of ``recently_archived_registrations``) as shown:
    the amount in the currency's units, Stripe's two statuses together."""
    columns = ["email", "amount", "created_at", "archived_at", "archive_reason", "stripe_checkout_session_id",
               "stripe_status", "id", "cleanup_run_id"]
    if removed.empty:
        return pd.DataFrame(columns=columns)
    stripe_status = [" / ".join(str(v) for v in pair if v is not None and not pd.isna(v)) or None
                     for pair in zip(removed["stripe_session_status"], removed["stripe_payment_status"], strict=True)]
    shown = removed.assign(amount=amounts_column(removed),
                           stripe_status=stripe_status,
                           archive_reason=removed["archive_reason"].map(_words))
    return shown[columns]


def _words(value):
    return value.replace("_", " ") if isinstance(value, str) else value


def job_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The job summary as shown: durations in seconds, the columns a reader looks for."""
    columns = ["job", "last_status", "last_run_at", "last_success_at", "last_failure_at",
               "last_duration_s", "avg_duration_s", "runs", "failures", "last_error"]
    if summary.empty:
        return pd.DataFrame(columns=columns)
    shown = summary.assign(last_status=summary["last_status"].map(status_label),
                           last_duration_s=summary["last_duration_ms"].astype("float64") / 1000,
                           avg_duration_s=summary["avg_duration_ms"].astype("float64") / 1000,
                           # Words instead of a grey "None": a job that never failed says so.
                           last_success_at=summary["last_success_at"].map(lambda t: _when(t, "never")),
                           last_failure_at=summary["last_failure_at"].map(lambda t: _when(t, "never")),
                           last_error=summary["last_error"].map(lambda e: "" if e is None or pd.isna(e) else e))
    return shown[columns]


def _when(moment, missing: str) -> str:
    """A UTC time to the minute, or ``missing`` when there is none."""
    if moment is None or pd.isna(moment):
        return missing
    return f"{pd.Timestamp(moment):%Y-%m-%d %H:%M}"


def cleanup_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Cleanup history as shown: what was archived and why registrations were kept."""
    columns = ["id", "started_at", "status", "trigger", "dry_run", "events_archived", "events_kept_failed",
               "registrations_archived", "registrations_kept_paid", "registrations_queued",
               "archive_reasons", "duration_s", "error"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    reasons = runs["details"].map(lambda d: ", ".join(f"{n} {_words(r)}" for r, n in sorted(
        ((d or {}).get("archive_reasons") or {}).items())))
    # A dry run reports what it would have archived.
    events = runs["events_archived"].where(~runs["dry_run"], runs["events_matched"])
    shown = runs.assign(archive_reasons=reasons, events_archived=events, status=runs["status"].map(status_label),
                        duration_s=runs["duration_ms"].astype("float64") / 1000)
    return shown[columns]
