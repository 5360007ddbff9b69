"""Health: database size and growth, every job's history, cleanup runs, and a Run cleanup
action (a dry run unless confirmed) that writes through the jobs layer, never through the
dashboard's read-only connection."""

import pandas as pd
import streamlit as st

from core.db import check_connection, create_jobs_engine
from core.errors import ConfigError, JobBusy
from core.settings import get_settings
from dashboard import auth, data
from dashboard import text
from dashboard.columns import row_id, utc_time
from dashboard import health_figures as hf
from jobs import cleanup
from jobs.health_snapshot import human_bytes

RECENT_RUNS = 200
CLEANUP_RUNS = 30
RESULT_KEY = "cleanup_result"
CONFIRM_KEY = "cleanup_confirm"
SNAPSHOT_HINT = ("Record one with `python -m jobs health-snapshot` (the scheduler takes one every hour, "
                 "and every cleanup takes one).")


def jobs_database_problem() -> str | None:
    """Why this dashboard process cannot run a job, or None."""
    settings = get_settings()
    if settings.DASHBOARD_DATABASE_URL and not settings.DATABASE_URL:
        # The jobs engine would fall back to the embedded database: the wrong one.
        return ("Running cleanup from here needs DATABASE_URL (a read-write URL) in the dashboard's "
                "environment; only DASHBOARD_DATABASE_URL is set.")
    return None


def run_cleanup(*, dry_run: bool, pending_days: int, events_days: int, skip_registrations: bool) -> None:
    """Run cleanup through the jobs layer and keep its outcome for the next rerun."""
    engine = None
    label = "Dry run" if dry_run else "Cleanup"
    refusal = auth.write_refusal(get_settings())
    if refusal:
        st.session_state[RESULT_KEY] = ("error", f"{label} did not start: {refusal}", [])
        st.rerun()
    with st.status(f"{label} running…", expanded=True) as status:
        line = st.empty()
        try:
            engine = create_jobs_engine()
            check_connection(engine)
            report = cleanup.run(engine, now=data.utc_now(), dry_run=dry_run, pending_days=pending_days,
                                 events_days=events_days, skip_registrations=skip_registrations,
                                 trigger="dashboard", progress=line.write)
        except ConfigError as exc:
            st.session_state[RESULT_KEY] = ("error", f"{label} did not start: {exc}", [])
        except JobBusy as exc:
            st.session_state[RESULT_KEY] = ("warning", str(exc), [])
        except Exception as exc:  # shown, not raised: the page must stay usable
            st.session_state[RESULT_KEY] = ("error", f"{label} failed: {type(exc).__name__}: {exc}", [])
        else:
            kind = {"failed": "error", "needs_review": "warning"}.get(report.status, "success")
            st.session_state[RESULT_KEY] = (kind, f"{label} finished: {report.status} (run {report.run_id})",
                                            report.summary_lines()[1:])
        finally:
            if engine is not None:
                engine.dispose()
        status.update(label=f"{label} finished", state="complete")
    data.refresh()
    st.rerun()


window = data.current_window()
st.title("Health")

# --- database size and growth ------------------------------------------------------------
sizes = data.query_df("database_size_history", start=window.start, end=window.end, bucket=window.bucket)
growth = data.query_df("table_growth", start=window.start, end=window.end, bucket=window.bucket)
tables = data.query_df("latest_tables")
cleanups = data.query_df("cleanup_history", limit=CLEANUP_RUNS)

latest_size, change = hf.size_change(sizes)
if latest_size is None and not tables.empty:
    latest_size = int(tables["database_size_bytes"].iloc[0])
rows = dict(zip(tables["table_name"], tables["row_estimate"])) if not tables.empty else {}
cols = st.columns(4)
cols[0].metric("Database size", human_bytes(latest_size), border=True,
               delta=None if change is None else f"{'+' if change >= 0 else '-'}{human_bytes(abs(change))}",
               delta_color="inverse", help=f"Change over the {window.label}, from the health snapshots.")
for col, (table, label) in zip(cols[1:3], [("webhook_events", "Webhook events"),
                                          ("webhook_events_archive", "Archived events")]):
    value = rows.get(table)
    col.metric(label, "-" if value is None or pd.isna(value) else f"~{int(value):,}", border=True,
               help="PostgreSQL's row estimate at the latest snapshot ('-' until it has analysed the table).")
if cleanups.empty:
    cols[3].metric("Last cleanup", "never", border=True)
else:
    last = cleanups.iloc[0]
    cols[3].metric("Last cleanup", hf.status_label(str(last["status"])) + (" (dry run)" if last["dry_run"] else ""),
                   border=True,
                   help=f"Started {last['started_at']:%Y-%m-%d %H:%M} UTC")

span = (window.start, window.end)
if tables.empty:
    st.info(f"No health snapshot yet. {SNAPSHOT_HINT}", icon=":material/info:")
elif sizes.empty and growth.empty:
    # Three empty charts saying the same thing would push the jobs off the screen.
    st.info(f"No health snapshot in the {window.label}; the latest is from "
            f"{tables['taken_at'].iloc[0]:%Y-%m-%d %H:%M} UTC. {SNAPSHOT_HINT}", icon=":material/info:")
if not (sizes.empty and growth.empty):
    left, right = st.columns(2)
    text.plotly_chart(where=left, fig=hf.database_size_chart(sizes, x_range=span), key="database_size")
    text.plotly_chart(where=right, fig=hf.table_size_chart(growth, x_range=span), key="table_sizes")
    text.plotly_chart(hf.table_rows_chart(growth, x_range=span), key="table_rows")
if not tables.empty:
    with st.expander(f"Tables at the latest snapshot ({tables['taken_at'].iloc[0]:%Y-%m-%d %H:%M} UTC)"):
        text.dataframe(tables.drop(columns=["taken_at", "database_size_bytes"]), hide_index=True, key="tables",
                     column_config={
                         "table_name": "Table",
                         "total_bytes": st.column_config.NumberColumn("Size (bytes)", format="compact"),
                         "row_estimate": st.column_config.NumberColumn("Rows (estimate)", format="compact"),
                         "oldest_row_at": utc_time("Oldest row kept"),
                     })

# --- jobs --------------------------------------------------------------------------------
st.subheader("Jobs")
summary = data.query_df("job_summary", since=window.start)
if summary.empty:
    st.info("No job has run yet.", icon=":material/info:")
else:
    text.dataframe(hf.job_table(summary), hide_index=True, key="job_summary", column_config={
        "job": "Job", "last_status": "Last status", "last_run_at": utc_time("Last run"),
        "last_success_at": utc_time("Last success"), "last_failure_at": utc_time("Last failure"),
        "last_duration_s": st.column_config.NumberColumn("Last duration (s)", format="%.1f"),
        "avg_duration_s": st.column_config.NumberColumn(f"Average (s), {window.label}", format="%.1f"),
        "runs": st.column_config.NumberColumn(f"Runs, {window.label}"),
        "failures": st.column_config.NumberColumn(f"Failures, {window.label}"),
        "last_error": st.column_config.TextColumn("Last error", width="large"),
    })
    job_choice = st.selectbox("Runs of", ["every job", *summary["job"].tolist()], key="health_job_filter")
    history = data.query_df("job_history", start=window.start, end=window.end, limit=RECENT_RUNS,
                            job=None if job_choice == "every job" else job_choice)
    text.plotly_chart(hf.job_duration_chart(history, x_range=span), key="job_durations")
    with st.expander(f"Latest {min(len(history), RECENT_RUNS)} runs in the {window.label}"):
        text.dataframe(hf.job_runs_table(history), hide_index=True, key="job_history", column_config={
            "id": row_id("Run"), "job": "Job", "status": "Status",
            "trigger": "Started from", "started_at": utc_time("Started"), "finished_at": utc_time("Finished"),
            "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"), "host": "Host",
            "error": st.column_config.TextColumn("Error", width="large"),
        })

# --- cleanup -----------------------------------------------------------------------------
st.subheader("Cleanup")
if cleanups.empty:
    st.info("Cleanup has not run yet.", icon=":material/info:")
else:
    text.plotly_chart(hf.cleanup_chart(cleanups), key="cleanup_runs")
    text.dataframe(hf.cleanup_table(cleanups), hide_index=True, key="cleanup_history", column_config={
        "id": row_id("Run"), "status": "Status", "trigger": "Started from",
        "started_at": utc_time("Started"),
        "dry_run": st.column_config.CheckboxColumn("Dry run"),
        "events_archived": st.column_config.NumberColumn("Events archived",
                                                         help="For a dry run: how many it would archive."),
        "events_kept_failed": st.column_config.NumberColumn("Kept: failed events"),
        "archive_reasons": "Why registrations were removed",
        "error": st.column_config.TextColumn("Error", width="large"),
        "registrations_archived": st.column_config.NumberColumn("Registrations removed"),
        "registrations_kept_paid": st.column_config.NumberColumn("Kept: paid"),
        "registrations_queued": st.column_config.NumberColumn("For review"),
        "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
    })
    removed = data.query_df("recently_archived_registrations", limit=50)
    if not removed.empty:
        with st.expander("Registrations cleanup removed most recently (kept in registrations_archive)"):
            text.dataframe(hf.archived_registrations_table(removed), hide_index=True, key="archived_registrations",
                         column_config={
                             "email": "E-mail", "amount": "Amount", "created_at": utc_time("Created"),
                             "archived_at": utc_time("Removed"), "archive_reason": "Why",
                             "stripe_checkout_session_id": "Checkout Session",
                             "stripe_status": "Stripe said (session / payment)", "id": "Registration",
                             "cleanup_run_id": row_id("Cleanup run"),
                         })


st.subheader("Run cleanup")
problem = jobs_database_problem()
if problem:
    st.warning(problem, icon=":material/block:")
options = st.columns(3)
pending_days = options[0].number_input("Stale pending after (days)", min_value=1, max_value=3650,
                                       value=cleanup.DEFAULT_PENDING_DAYS, key="cleanup_pending_days")
events_days = options[1].number_input("Archive completed events after (days)", min_value=cleanup.MIN_EVENTS_DAYS,
                                      max_value=36500, value=cleanup.DEFAULT_EVENTS_DAYS, key="cleanup_events_days")
skip_registrations = options[2].checkbox("Leave registrations alone", key="cleanup_skip_registrations",
                                         help="Archive webhook events only (no Stripe key needed).")
chosen = dict(pending_days=int(pending_days), events_days=int(events_days), skip_registrations=skip_registrations)
buttons = st.columns([1, 1, 4])
if buttons[0].button("Dry run", type="primary", icon=":material/preview:", key="cleanup_dry_run",
                     disabled=bool(problem), help="Count what cleanup would do; change nothing."):
    run_cleanup(dry_run=True, **chosen)
if buttons[1].button("Run for real…", icon=":material/delete_sweep:", key="cleanup_for_real",
                     disabled=bool(problem)):
    st.session_state[CONFIRM_KEY] = True

if st.session_state.get(CONFIRM_KEY):
    with st.container(border=True):
        st.warning(f"Archive completed webhook events older than {chosen['events_days']} days"
                   + ("" if skip_registrations else
                      f", and remove pending registrations older than {chosen['pending_days']} days that Stripe "
                      "confirms were never paid (kept in registrations_archive; paid ones go to reconciliation)")
                   + "?", icon=":material/warning:")
        confirm, cancel = st.columns([1, 5])
        if confirm.button("Yes, run cleanup", type="primary", key="cleanup_confirmed"):
            del st.session_state[CONFIRM_KEY]
            run_cleanup(dry_run=False, **chosen)
        if cancel.button("Cancel", key="cleanup_cancelled"):
            del st.session_state[CONFIRM_KEY]
            st.rerun()

if RESULT_KEY in st.session_state:
    kind, headline, lines = st.session_state[RESULT_KEY]
    getattr(st, kind)("\n\n".join([f"**{headline}**", *lines]))
