"""Errors: what fails, by category and over time; each error group's category, recovery
action, attempts (recovered ones included) and what happens next; Retry now for one event
or a whole group: the plan (how many) first, then ``python -m jobs retry`` in the background
through the dashboard's writes (dashboard/writes.py), followed with its progress."""

from urllib.parse import urlencode

import streamlit as st

from core.errors import ConfigError
from core.settings import get_settings
from dashboard import data, writes
from dashboard.components import text
from dashboard.components.background_job import BackgroundJob
from dashboard.components.columns import utc_time
from dashboard.components.text import markdown_literal
from dashboard.views.errors import figures as ef

TOP_GROUPS = 25
RETRY_MAX_EVENTS = 2000  # one Retry now re-delivers at most this many events of a group
# The Event box offers this many of the group's events one by one (the oldest). The whole
# group, up to RETRY_MAX_EVENTS, is read only when Retry now is clicked for all of it: read on
# every render, a large group's 2,000 events were most of the page's time at 10M events.
EVENT_CHOICES = 50
ALL_OF_GROUP = "all of this group"
# The run this browser session started under "retry_run", its outcome under "retry_result".
RETRY = BackgroundJob("retry", slot="retry_run", result_key="retry_result")
PLAN_KEY = "retry_plan"


def start_retry(event_ids: list[str]) -> None:
    st.session_state.pop(PLAN_KEY, None)
    args = [arg for event_id in event_ids for arg in ("--event-id", event_id)]
    st.session_state[RETRY.result_key] = RETRY.start(*args)  # returns only when nothing was started
    st.rerun()


def retry_progress(run: writes.BackgroundRun) -> None:
    """The running retry (``RETRY.follow`` draws this once a second until it ends)."""
    progress = ((run.record() or {}).get("progress") or {})
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    st.progress(done / total if total else 0.0,
                text=f"Re-delivering: {done:,} of {total:,}" if total else "Re-delivery starting…")


def show_outcome(outcome) -> None:
    if isinstance(outcome, Exception):
        st.error(f"**Retry did not start**: {markdown_literal(outcome)}", icon=":material/error:")
        return
    report = outcome.report or {}
    if outcome.state in ("refused", "failed") or not report:
        st.error(f"**Retry failed**: {markdown_literal(outcome.reason or f'exit code {outcome.exit_code}')}",
                 icon=":material/error:")
        return
    skipped = report.get("skipped") or {}
    st.success(f"**Re-delivered {report.get('delivered', 0):,} of {report.get('planned', 0):,}**: "
               f"{report.get('completed', 0):,} completed, {report.get('failed_again', 0):,} failed again "
               f"(the app planned their next retry), {report.get('failed_permanently', 0):,} failed for good"
               + (f"; {len(skipped):,} not re-delivered (no longer failed)" if skipped else "") + ".",
               icon=":material/task_alt:")


def replay_problem() -> str | None:
    """Why nothing can be re-delivered from here (no endpoint configured), or None."""
    try:
        configured = get_settings().MONITOR_REPLAY_URL
    except ConfigError as exc:
        return str(exc)
    if not configured:
        return ("Retry now re-delivers to the app's endpoint: set MONITOR_REPLAY_URL (and STRIPE_WEBHOOK_SECRET) "
                "in the dashboard's environment.")
    return None


def retry_section(groups) -> None:
    st.subheader("Retry now")
    if RETRY.show(retry_progress, show_outcome):
        return
    failing = groups[groups["still_failing"] > 0]
    if failing.empty:
        st.info("Nothing in this window is still failing.", icon=":material/check_circle:")
        return
    problem = writes.problem() or replay_problem()
    if problem:
        st.warning(problem, icon=":material/block:")
    labels = {row["fingerprint"]: f"{row['category']} · {row['still_failing']:,} failing · {row['fingerprint'][:90]}"
              for _, row in failing.iterrows()}
    # No group until one is chosen: a render reads no group's events (at 10M events, listing
    # the largest group's took 40-50 ms of every render of the page), and a retry is never
    # one click away from a group nobody picked.
    fingerprint = st.selectbox("Error group", list(labels), format_func=labels.get, key="retry_group", index=None,
                               placeholder=f"Choose one of the {len(labels)} groups still failing")
    if fingerprint is None:
        return
    events = data.query_df("error_group_failing_event_choices", start=window.start, end=window.end,
                           fingerprint=fingerprint, limit=EVENT_CHOICES)
    if events.empty:
        st.info("The events of this group are no longer failed.", icon=":material/check_circle:")
        return
    one = st.selectbox("Event", [ALL_OF_GROUP] + list(events["stripe_event_id"]), key="retry_event",
                       help="Re-deliver every event of the group that is still failed, or one of them "
                            f"(the {EVENT_CHOICES} oldest are listed).")
    left, right = st.columns([1, 4])
    if left.button("Retry now…", type="primary", icon=":material/replay:", key="retry_plan_button",
                   disabled=bool(problem)):
        chosen = (data.query_df("error_group_failing_event_choices", start=window.start, end=window.end,
                                fingerprint=fingerprint, limit=RETRY_MAX_EVENTS)
                  if one == ALL_OF_GROUP else events[events["stripe_event_id"] == one])
        st.session_state[PLAN_KEY] = {"for": (fingerprint, one), "event_ids": list(chosen["stripe_event_id"]),
                                      "categories": chosen["error_category"].value_counts().to_dict()}
    plan = st.session_state.get(PLAN_KEY)
    # A plan is confirmed only for the choice it was made for: after picking another group or
    # event, Retry now plans again rather than offering to re-deliver what is no longer shown.
    if plan and plan["for"] == (fingerprint, one) and plan["event_ids"]:
        planned, categories = plan["event_ids"], plan["categories"]
        with st.container(border=True):
            st.warning(f"Re-deliver **{len(planned):,}** failed event(s) to MONITOR_REPLAY_URL as Stripe would "
                       f"({', '.join(f'{name} {count}' for name, count in categories.items())})? Completed or "
                       "processing events are never re-delivered.", icon=":material/replay:")
            confirm, cancel = st.columns([1, 5])
            if confirm.button("Yes, re-deliver", type="primary", key="retry_confirmed"):
                start_retry(planned)
            if cancel.button("Cancel", key="retry_cancelled"):
                del st.session_state[PLAN_KEY]
                st.rerun()


RETRY.collect_finished()
window = data.current_window()
st.title("Errors")

plan = ef.plan_summary(data.query_df("failure_plan"))
outcomes = data.query_df("failure_outcomes", start=window.start, end=window.end)
groups = data.query_df("error_groups", start=window.start, end=window.end, limit=TOP_GROUPS)
if outcomes.empty and groups.empty and not any(plan.values()):
    st.success(f"No failed or retried events in the {window.label}.", icon=":material/check_circle:")
    st.stop()

still_failing, recovered, retrying = (int(outcomes[c].sum()) if not outcomes.empty else 0
                                      for c in ("still_failing", "recovered", "retrying"))
text.metric_row([
    dict(label="Still failing", value=f"{still_failing:,}",
         help="Events received in the window whose latest attempt failed."),
    dict(label="Recovered", value=f"{recovered:,}", help="Completed on a later attempt (attempts > 1)."),
    dict(label="Retrying", value=f"{retrying:,}", help="Pending or processing again after an earlier attempt."),
    dict(label="Retry planned", value=f"{plan['retry_planned']:,}",
         help="Failed events (any time) with an automatic retry planned by the error policy."),
    dict(label="Needs a person", value=f"{plan['needs_person']:,}",
         help="Failed events (any time) no automatic retry will fix: a validation error, a permanent "
              "Stripe error, or the retries are used up. Fix the cause, then Retry now."),
])

by_category = data.query_df("failed_attempts_by_bucket_and_category", start=window.start, end=window.end,
                            bucket=window.bucket)
text.chart(ef.failures_by_category_chart, by_category, bucket=window.bucket, x_range=(window.start, window.end),
           key="failures_by_category")
failures = data.query_df("failures_by_bucket_and_type", start=window.start, end=window.end, bucket=window.bucket)
left, right = st.columns(2)
text.chart(ef.failures_by_type_chart, failures, bucket=window.bucket, x_range=(window.start, window.end),
           where=left, key="failures_by_type")
text.chart(ef.outcomes_chart, outcomes, where=right, key="outcomes")

st.subheader("Error groups")
st.caption("Failed attempts in the window grouped by message (ids, e-mail addresses and numbers replaced by "
           "placeholders), recovered ones included: 'recovered' events completed on a later attempt, "
           "'still failing' ones are failed now; 'next' is the next planned retry or 'needs a person'.")
if groups.empty:
    st.info("No failed attempts in this window.")
else:
    groups_shown = ef.error_groups_table(groups, now=data.utc_now())
    # Each group links to its failing events (the Events page lists them for the same window).
    groups_shown.insert(1, "failing_events", [
        "/events?" + urlencode({"group": fingerprint}) if still else None
        for fingerprint, still in zip(groups_shown["fingerprint"], groups_shown["still_failing"], strict=True)])
    text.dataframe(groups_shown, hide_index=True, key="error_groups",
                 column_config={
                     "failing_events": st.column_config.LinkColumn("Its events", display_text="failing events"),
                     "fingerprint": st.column_config.TextColumn("Error (normalised)", width="large"),
                     "category": "Category",
                     "failed_attempts": st.column_config.NumberColumn("Failed attempts"),
                     "events": st.column_config.NumberColumn("Events"),
                     "recovered": st.column_config.NumberColumn("Recovered"),
                     "still_failing": st.column_config.NumberColumn("Still failing"),
                     "next": "Next",
                     "recovery_action": st.column_config.TextColumn("Recovery action", width="medium"),
                     "first_seen": utc_time("First failure"),
                     "last_seen": utc_time("Last failure"),
                     "event_types": "Event types",
                     "example": st.column_config.TextColumn("Example message"),
                 })
    retry_section(groups)
