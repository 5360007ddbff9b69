"""Alerts: what fires now (acknowledge it, or silence it for a while), the history of the
window with started / fired / resolved and time to detect, and each notification's delivery.

Reads go through the read-only engine (``dashboard.data``); acknowledging and silencing are
writes, made through the dashboard's writes (dashboard/writes.py) and recorded with the logged-in identity.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from core.errors import ConfigError, MonitorError
from core.formatting import format_duration
from core.settings import get_settings
from dashboard import auth, data, writes
from dashboard.components import text
from dashboard.components.columns import row_id, utc_time
from dashboard.components.text import markdown_literal
from dashboard.views.alerts import figures as af
from jobs.alerting import actions

HISTORY_LIMIT = 500
FLASH_KEY = "alerts_flash"

FIRING_COLUMNS = {
    "id": row_id("Alert"), "severity": "Severity", "rule": "Rule",
    "summary": st.column_config.TextColumn("Summary", width="large"),
    "started_at": utc_time("Began", seconds=True), "fired_at": utc_time("Fired", seconds=True),
    "last_notified_at": utc_time("Last told"), "acknowledged_by": "Acknowledged by",
    "silenced_until": utc_time("Silenced until"),
}
HISTORY_COLUMNS = {
    "id": row_id("Alert"), "severity": "Severity", "rule": "Rule", "status": "Status",
    "summary": st.column_config.TextColumn("Summary", width="large"),
    "started_at": utc_time("Began", seconds=True), "fired_at": utc_time("Fired", seconds=True),
    "resolved_at": utc_time("Resolved", seconds=True), "time_to_detect": "Time to detect", "lasted": "Lasted",
    "notifications_sent": st.column_config.NumberColumn("Sent"),
    "notifications_not_sent": st.column_config.NumberColumn("Not sent (yet)"),
    "acknowledged_by": "Acknowledged by",
}
NOTIFICATION_COLUMNS = {
    "channel": "Channel", "kind": "Kind", "status": "Delivery", "attempts": st.column_config.NumberColumn("Attempts"),
    "error": st.column_config.TextColumn("Last error", width="large"), "created_at": utc_time("Queued", seconds=True),
    "sent_at": utc_time("Sent", seconds=True), "next_attempt_at": utc_time("Next attempt", seconds=True),
}


def firing_section() -> None:
    st.subheader("Firing now")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/task_alt:")
    stopped = [reason for reason in data.verdict().reasons if reason.code == "watch_stopped"]
    for reason in stopped:  # nobody evaluates the rules: an empty list proves nothing
        st.warning(f"{markdown_literal(reason.summary)}. Start `python -m jobs watch` (or schedule its "
                 "`watch` entry); until then nothing below changes and no one is told.", icon=":material/alarm_off:")
    firing = data.query_df("alerts_firing", now=data.utc_now())
    if firing.empty:
        if not stopped:
            st.success("Nothing is firing.", icon=":material/notifications_off:")
        return
    text.dataframe(firing[list(FIRING_COLUMNS)], hide_index=True, column_config=FIRING_COLUMNS)
    rows = {int(row["id"]): row for row in firing.to_dict("records")}
    chosen = st.selectbox("Alert", list(rows), format_func=lambda i: af.firing_label(rows[i]), key="alerts_chosen")
    alert = rows[int(chosen)]
    settings = get_settings()
    problem = writes.problem(settings)
    if problem:
        st.info(problem, icon=":material/info:")
    st.caption(f"Recorded as done by {markdown_literal(writes.actor() or 'nobody')} (the logged-in identity).")
    left, right = st.columns(2)
    with left.form(f"alerts_ack_{alert['id']}"):
        st.caption("Acknowledge: you are on it. No more reminders; it still resolves (and says so).")
        acknowledge = st.form_submit_button("Acknowledge", icon=":material/check:",
                                            disabled=problem is not None or alert.get("acknowledged_by") is not None)
    with right.form(f"alerts_silence_{alert['id']}", clear_on_submit=True):
        st.caption("Silence: no message at all about this alert's subject for a while.")
        length = st.selectbox("For", list(af.SILENCE_CHOICES), index=1, key=f"alerts_silence_for_{alert['id']}")
        reason = st.text_input("Reason", placeholder="deploying the fix, known Stripe incident, …",
                               key=f"alerts_silence_reason_{alert['id']}")
        silence = st.form_submit_button("Silence", icon=":material/notifications_paused:",
                                        disabled=problem is not None)
    if not (acknowledge or silence):
        return
    refusal = auth.write_refusal(settings)
    if refusal:
        st.error(refusal, icon=":material/block:")
        return
    by = auth.current_identity() or ""
    try:
        if acknowledge:
            writes.call(actions.acknowledge, int(alert["id"]), actor=by, now=data.utc_now())
            st.session_state[FLASH_KEY] = f"Alert #{alert['id']} acknowledged by {markdown_literal(by)}."
        else:
            writes.call(actions.silence, str(alert["fingerprint"]), duration=timedelta(hours=af.SILENCE_CHOICES[length]),
                         actor=by, now=data.utc_now(), reason=reason)
            st.session_state[FLASH_KEY] = (f"{markdown_literal(alert['fingerprint'])} silenced for {length} "
                                           f"by {markdown_literal(by)}.")
    except (MonitorError, ConfigError) as exc:
        st.error(markdown_literal(exc), icon=":material/error:")
        return
    data.refresh()
    st.rerun()


def history_section(window) -> None:
    st.subheader("History")
    history = data.query_df("alerts_history", start=window.start, end=window.end, limit=HISTORY_LIMIT)
    summary = data.query_row("alert_detection_summary", start=window.start, end=window.end)
    text.metric_row([
        dict(label="Alerts fired", value=f"{int(summary.get('alerts') or 0):,}"),
        dict(label="Median to detect", value=format_duration(summary.get("median_s")),
             help="Median time from the moment an alert's condition began to the alert firing."),
        dict(label="p95 to detect", value=format_duration(summary.get("p95_s")),
             help="95 % of the alerts fired within this time of their condition beginning."),
        dict(label="Slowest", value=format_duration(summary.get("max_s"))),
    ])
    text.chart(af.time_to_detect_chart, history, (window.start, window.end), key="alerts_ttd")
    if history.empty:
        st.caption(af.NO_ALERTS)
        return
    table = af.history_table(history)
    text.dataframe(table[list(HISTORY_COLUMNS)], hide_index=True, column_config=HISTORY_COLUMNS)
    rows = {int(row["id"]): row for row in history.to_dict("records")}
    chosen = st.selectbox("Deliveries of alert", list(rows), format_func=lambda i: af.firing_label(rows[i]),
                          key="alerts_history_chosen")
    notifications = data.query_df("alert_notifications_of", alert_id=int(chosen))
    if notifications.empty:
        st.caption("No notification was queued for this alert (no channel configured, or it was silenced).")
    else:
        text.dataframe(notifications[list(NOTIFICATION_COLUMNS)], hide_index=True, column_config=NOTIFICATION_COLUMNS)


window = data.current_window()
st.title("Alerts")
st.caption("What `python -m jobs watch` detected and whom it told. Times are UTC; time to detect runs from "
           "when the condition began (e.g. the first failed delivery) to when the alert fired.")
firing_section()
history_section(window)
