"""Health: database size and growth, every job's history, cleanup runs, and a Run cleanup
action (a dry run unless confirmed): ``python -m jobs cleanup`` started in the background
through the dashboard's writes (dashboard/writes.py), followed with live progress,
its outcome read from the run record and the exit code."""

from dataclasses import fields
from datetime import timedelta

import pandas as pd
import streamlit as st

from core.settings import get_settings
from dashboard import data, metrics, writes
from dashboard.components import links, text
from dashboard.components.background_job import BackgroundJob
from dashboard.components.columns import row_id, utc_time
from dashboard.components.text import markdown_literal
from dashboard.views.health import figures as hf
from dashboard.views.health import reports as hr
from dashboard.views.health.schedule_table import schedule_table
from jobs.cleanup import run as cleanup
from jobs.health.snapshot import human_bytes
from jobs.schedule.timetable import load_schedule_quietly
from queries import fetch_one

RECENT_RUNS = 200
CLEANUP_RUNS = 30
CONFIRM_KEY = "cleanup_confirm"
SNAPSHOT_HINT = ("Record one with `python -m jobs health-snapshot` (the scheduler takes one every hour, "
                 "and every cleanup takes one).")


def cleanup_result(run: writes.BackgroundRun) -> tuple[str, str, list[str]]:
    """What to show for a finished cleanup run: (st function name, headline, report lines)."""
    outcome = run.outcome()
    label = "Dry run" if "--dry-run" in run.args else "Cleanup"
    if outcome.state == "refused":
        return "error", f"{label} did not start: {markdown_literal(outcome.reason)}", []
    if outcome.state == "busy":
        return "warning", markdown_literal(outcome.reason or "Another cleanup run is in progress; nothing was done."), []
    if outcome.report is None or "run_id" not in outcome.report:
        return "error", f"{label} failed: {markdown_literal(outcome.reason or f'exit code {outcome.exit_code}')}", []
    known = {f.name for f in fields(cleanup.CleanupReport)}
    report = cleanup.CleanupReport(**{key: value for key, value in outcome.report.items() if key in known})
    kind = {"done": "success", "needs_person": "warning"}.get(outcome.state, "error")
    return (kind, f"{label} finished: {report.status} (run {report.run_id})",
            [markdown_literal(line) for line in report.summary_lines()[1:]])


# The run this browser session started under "cleanup_run", what to show of its outcome under
# "cleanup_result"; a cleanup started elsewhere (cron, the scheduler) holds the same lock.
CLEANUP = BackgroundJob("cleanup", slot="cleanup_run", result_key="cleanup_result", lock=cleanup.JOB,
                        summarize=cleanup_result)


def start_cleanup(*, dry_run: bool, pending_days: int, events_days: int, skip_registrations: bool) -> None:
    """Start cleanup in the background; the page follows it."""
    args = ["--pending-days", pending_days, "--events-days", events_days]
    args += ["--dry-run"] * dry_run + ["--skip-registrations"] * skip_registrations
    refused = CLEANUP.start(*args)  # returns only when nothing was started
    st.session_state[CLEANUP.result_key] = ("error", f"{'Dry run' if dry_run else 'Cleanup'} did not start: "
                                                     f"{markdown_literal(refused)}", [])
    st.rerun()


def cleanup_progress(run: writes.BackgroundRun | None) -> None:
    """A running cleanup (``CLEANUP.follow`` draws this once a second until it ends)."""
    row = fetch_one(data.get_engine(), "cleanup_running_run") or {}
    if run is None:
        st.warning(f"**A cleanup run is in progress** (started from {row.get('trigger', 'elsewhere')}); "
                   "Run cleanup is available again when it ends.", icon=":material/hourglass_top:")
    label = "Dry run" if row.get("dry_run") or (run is not None and "--dry-run" in run.args) else "Cleanup"
    parts = [f"{int(row.get('events_archived') or 0):,} of {metrics.plural(row.get('events_matched'), 'event')} "
             f"archived in {metrics.plural(row.get('event_batches'), 'batch', 'batches')}"]
    if row and not row.get("registrations_skipped"):
        parts.append(f"{int(row.get('stale_pending_found') or 0):,} stale pending registrations found, "
                     f"{int(row.get('registrations_archived') or 0):,} removed")
    record = run.record() if run is not None else None
    latest = ((record or {}).get("progress") or {}).get("message")
    st.info(f"**{label} #{row.get('id', '…')} running**: " + "; ".join(parts) + "."
            + (f"\n\nLatest: {markdown_literal(latest)}" if latest else ""), icon=":material/sync:")


CLEANUP.collect_finished()
window = data.current_window()
page_settings = get_settings()
st.title("Health")

# --- database size and growth ------------------------------------------------------------
sizes = data.query_df("database_size_history", start=window.start, end=window.end, bucket=window.bucket)
growth = data.query_df("table_growth", start=window.start, end=window.end, bucket=window.bucket)
tables = data.query_df("latest_tables")
cleanups = data.query_df("cleanup_history", limit=CLEANUP_RUNS)

_, change = hf.size_change(sizes)
# The size now, read live: a fresh install has no snapshot yet and still has a size.
latest_size = data.query_row("database_size_now").get("database_size_bytes")
rows = dict(zip(tables["table_name"], tables["row_estimate"], strict=True)) if not tables.empty else {}
tiles = [dict(label="Database size", value=human_bytes(latest_size),
              delta=None if change is None else f"{'+' if change >= 0 else '-'}{human_bytes(abs(change))}",
              delta_color="inverse", help=f"Change over the {window.label}, from the health snapshots.")]
for table, label in [("webhook_events", "Webhook events"), ("webhook_events_archive", "Archived events")]:
    value = rows.get(table)
    tiles.append(dict(label=label, value="–" if value is None or pd.isna(value) else f"~{int(value):,}",
                      help="PostgreSQL's row estimate at the latest snapshot ('–' until it has analysed the table)."))
if cleanups.empty:
    tiles.append(dict(label="Last cleanup", value="never"))
else:
    last = cleanups.iloc[0]
    tiles.append(dict(label="Last cleanup", value=hf.status_label(str(last["status"])),
                      delta="dry run" if last["dry_run"] else None, delta_color="off", delta_arrow="off",
                      help=f"Started {last['started_at']:%Y-%m-%d %H:%M} UTC"))
text.metric_row(tiles)

span = (window.start, window.end)
if tables.empty:
    st.info(f"No health snapshot yet. {SNAPSHOT_HINT}", icon=":material/info:")
elif sizes.empty and growth.empty:
    # Three empty charts saying the same thing would push the jobs off the screen.
    st.info(f"No health snapshot in the {window.label}; the latest is from "
            f"{tables['taken_at'].iloc[0]:%Y-%m-%d %H:%M} UTC. {SNAPSHOT_HINT}", icon=":material/info:")
if not (sizes.empty and growth.empty):
    left, right = st.columns(2)
    text.chart(hf.database_size_chart, sizes, x_range=span, where=left, key="database_size")
    text.chart(hf.table_size_chart, growth, x_range=span, where=right, key="table_sizes")
    text.chart(hf.table_rows_chart, growth, x_range=span, key="table_rows")
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
        "last_success_at": "Last success (UTC)", "last_failure_at": "Last failure (UTC)",
        "last_duration_s": st.column_config.NumberColumn("Last duration (s)", format="%.1f"),
        # Short headers (a long one is cut to "Failures, last…"); the help names the window.
        "avg_duration_s": st.column_config.NumberColumn("Average (s)", format="%.1f",
                                                        help=f"Average duration in the {window.label}"),
        "runs": st.column_config.NumberColumn("Runs", help=f"Runs started in the {window.label}"),
        "failures": st.column_config.NumberColumn("Failures", help=f"Failed runs in the {window.label}"),
        "last_error": st.column_config.TextColumn("Last error", width="large"),
    })
    linked_job = links.fresh_params("health", ["job"]).get("job", [None])[0]
    if linked_job in summary["job"].tolist():  # opened from a link to one job (the status verdict)
        st.session_state["health_job_filter"] = linked_job
    job_choice = st.selectbox("Runs of", ["every job", *summary["job"].tolist()], key="health_job_filter")
    history = data.query_df("job_history", start=window.start, end=window.end, limit=RECENT_RUNS,
                            job=None if job_choice == "every job" else job_choice)
    text.chart(hf.job_duration_chart, history, x_range=span, key="job_durations")
    with st.expander(f"Latest {metrics.plural(min(len(history), RECENT_RUNS), 'run')} in the {window.label}",
                     expanded=job_choice != "every job"):
        text.dataframe(hf.job_runs_table(history), hide_index=True, key="job_history", column_config={
            "id": row_id("Run"), "job": "Job", "status": "Status",
            "trigger": "Started from", "started_at": utc_time("Started"), "finished_at": utc_time("Finished"),
            "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"), "host": "Host",
            "error": st.column_config.TextColumn("Error", width="large"),
        })

    if not history.empty:
        runs = {int(row["id"]): row for row in history.to_dict("records")}
        chosen_run = st.selectbox(
            "Output of run", list(runs), index=0, key="health_run_output",
            format_func=lambda rid: f"#{rid} {runs[rid]['job']} {runs[rid]['status']} "
                                    f"{runs[rid]['started_at']:%Y-%m-%d %H:%M} UTC")
        picked_run = runs[chosen_run]
        if picked_run.get("error") and not pd.isna(picked_run["error"]):
            st.code(picked_run["error"], language=None, wrap_lines=True)
        st.json(picked_run.get("summary") or {}, expanded=1)

# --- schedule ----------------------------------------------------------------------------
st.subheader("Schedule")
for reason in data.verdict().reasons:  # no scheduler heartbeat: nothing below runs on time
    if reason.code == "schedule_stopped":
        st.warning(f"{markdown_literal(reason.summary)}. Start `python -m jobs schedule`.", icon=":material/schedule:")
entries = list(load_schedule_quietly(page_settings).values())
if not entries:
    st.info("MONITOR_SCHEDULE is invalid or empty: `python -m jobs schedule --show` says why.",
            icon=":material/info:")
else:
    last_runs = {row["job"]: row for row in summary.to_dict("records")} if not summary.empty else {}
    scheduled = schedule_table(entries, last_runs, data.utc_now(),
                               grace=timedelta(minutes=page_settings.MONITOR_ALERT_JOB_GRACE_MINUTES))
    overdue = scheduled[scheduled["state"] != "on time"]
    if not overdue.empty:
        st.warning(f"{metrics.plural(len(overdue), 'scheduled job')} overdue: "
                   + ", ".join(markdown_literal(job) for job in overdue["job"])
                   + ". Is `python -m jobs schedule` running?", icon=":material/schedule:")
    st.caption(f"When `python -m jobs schedule` runs each job (MONITOR_SCHEDULE, times in "
               f"{markdown_literal(page_settings.MONITOR_SCHEDULE_TIMEZONE)}), its last run and its next.")
    text.dataframe(scheduled, hide_index=True, key="schedule", column_config={
        "job": "Job", "schedule": "Cron", "last_run_at": utc_time("Last run"), "last_status": "Last status",
        "next_run_at": utc_time("Next run"), "state": st.column_config.TextColumn("State", width="large")})

# --- Stripe's webhook endpoints ---------------------------------------------------------
st.subheader("Stripe's webhook endpoints")
endpoints = data.query_df("stripe_webhook_endpoints")
if endpoints.empty:
    st.info("Not read yet: every `python -m jobs sweep` lists them (GET /v1/webhook_endpoints; a restricted "
            "key needs 'Webhook Endpoints: Read').", icon=":material/info:")
else:
    disabled = endpoints[(endpoints["status"] == "disabled") & endpoints["app_endpoint"]]
    for url in disabled["url"]:
        st.error(f"Stripe has disabled {markdown_literal(url)}: nothing is delivered until it is enabled again "
                 "in Stripe's dashboard (Developers > Webhooks).", icon=":material/link_off:")
    st.caption(f"As the last sweep saw them ({endpoints['seen_at'].max():%Y-%m-%d %H:%M} UTC). The app's "
               "endpoint is MONITOR_STRIPE_ENDPOINT_URL (unset: every endpoint).")
    text.dataframe(endpoints, hide_index=True, key="stripe_endpoints", column_config={
        "url": st.column_config.TextColumn("URL", width="large"), "status": "Status",
        "app_endpoint": st.column_config.CheckboxColumn("The app's"), "api_version": "API version",
        "missing_events": st.column_config.TextColumn("Event types it misses", width="medium"),
        "api_version_mismatch": st.column_config.CheckboxColumn("Other version"),
        "disabled_since": utc_time("Disabled since"), "seen_at": utc_time("Checked"),
        "stripe_endpoint_id": "Endpoint"})

# --- cleanup -----------------------------------------------------------------------------
st.subheader("Cleanup")
if cleanups.empty:
    st.info("Cleanup has not run yet.", icon=":material/info:")
else:
    text.chart(hf.cleanup_chart, cleanups, key="cleanup_runs")
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
if CLEANUP.busy():
    CLEANUP.follow(cleanup_progress)
    st.stop()
problem = writes.problem()
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
    start_cleanup(dry_run=True, **chosen)
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
            start_cleanup(dry_run=False, **chosen)
        if cancel.button("Cancel", key="cleanup_cancelled"):
            del st.session_state[CONFIRM_KEY]
            st.rerun()

if CLEANUP.result() is not None:
    kind, headline, lines = CLEANUP.result()
    getattr(st, kind)("\n\n".join([f"**{headline}**", *lines]))


# --- health reports (python -m jobs health-report) ----------------------------------------
def health_reports_section() -> None:
    """Past weekly reports; the chosen one shown as mailed (sandboxed HTML) or as its text part."""
    st.subheader("Health reports")
    listed = data.query_df("health_report_list", limit=hr.REPORTS_LISTED)
    if listed.empty:
        st.info("No health report yet. `python -m jobs health-report` builds and mails one "
                "(the schedule does every Monday morning); `--dry-run` only records it.", icon=":material/info:")
        return
    text.dataframe(hr.report_table(listed), hide_index=True, key="health_reports", column_config={
        "id": row_id("Report"), "period_start": utc_time("From"), "period_end": utc_time("To (exclusive)"),
        "status": "Status", "recipients": "Recipients", "sent_at": utc_time("Sent"), "attempts": "Attempts",
        "trigger": "Started from", "subject": "Subject", "error": st.column_config.TextColumn("Error", width="large"),
    })
    labels = {int(row["id"]): hr.report_label(row) for _, row in listed.iterrows()}
    chosen = st.selectbox("Show report", list(labels), format_func=labels.get, key="health_report_choice")
    report = data.query_df("health_report_content", report_id=int(chosen))
    if report.empty:
        return
    shown = report.iloc[0]
    as_text = st.toggle("Plain-text part", key="health_report_as_text")
    if as_text:
        st.code(str(shown["text"]), language=None, wrap_lines=True)
    else:
        st.iframe(hr.sandboxed_frame(str(shown["html"])), height=hr.FRAME_HEIGHT)
    st.download_button("Download HTML", str(shown["html"]).encode("utf-8"), key="health_report_download",
                       file_name=f"health-report-{shown['period_end']:%Y-%m-%d}.html", mime="text/html")


health_reports_section()
