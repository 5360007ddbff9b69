"""Reconciliation: the last run's five numbers, Run now with live progress, the manual
review queue with a resolve action, the history of runs, and the events Stripe sent that never
arrived (the sweep: ``missed_section.py`` beside this page).

Reads go through the dashboard's read-only engine (``dashboard.data``). The two writes go
through the dashboard's writes (``dashboard/writes.py``): Run now starts
``python -m jobs reconcile`` in the background (``dashboard/components/background_job.py``)
and reads its outcome from the exit code and the run record; resolving calls
``jobs.reconcile.review.resolve_item`` with the read-write engine.
"""

from __future__ import annotations

import streamlit as st

from core.errors import ConfigError
from core.settings import get_settings
from dashboard import auth, data, metrics, writes
from dashboard.components import links, text
from dashboard.components.background_job import BackgroundJob
from dashboard.components.columns import row_id, utc_time
from dashboard.components.links import stripe_session_url
from dashboard.components.text import markdown_literal
from dashboard.views.reconciliation import figures as rf
from dashboard.views.reconciliation import missed_section
from jobs.reconcile import reconciler, review
from queries import fetch_one

# The run this browser session started under "reconciliation_launch", its outcome (shown until
# the next run) under "reconciliation_result"; a run started elsewhere holds the same lock.
RECONCILE = BackgroundJob("reconcile", slot="reconciliation_launch", result_key="reconciliation_result",
                          lock=reconciler.JOB)
FLASH_KEY = "reconciliation_flash"      # a one-time success message after resolving


RUN_ID = row_id("Run")
ITEM_COLUMNS = {
    "id": row_id("Item"), "severity": "Severity", "kind": "Mismatch",
    "stripe_checkout_session_id": "Checkout Session", "registration_id": "Registration",
    "created_at": utc_time("Found"), "last_seen_at": utc_time("Last seen"), "run_id": RUN_ID,
    "reason": st.column_config.TextColumn("Reason", width="large"),
    "resolved_at": utc_time("Resolved"), "resolved_by": "Resolved by",
    "resolution_note": st.column_config.TextColumn("Note", width="large"),
}
HISTORY_COLUMNS = {
    "id": RUN_ID, "started_at": utc_time("Started"), "status": "Status", "trigger": "Started from",
    "mode": "Mode", "lookback_days": st.column_config.NumberColumn("Lookback (days)"),
    **{key: st.column_config.NumberColumn(label, help=text.markdown_literal(help_text)) for key, label, help_text in rf.FIVE},
    "sessions_checked": st.column_config.NumberColumn("Sessions checked"),
    "stripe_requests": st.column_config.NumberColumn("Stripe requests"),
    "seconds": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
    "error": st.column_config.TextColumn("Error", width="large"),
}
KIND_COLUMNS = {"kind": "Mismatch", "action": "Outcome", "items": st.column_config.NumberColumn("Items")}


def run_blocker(settings) -> str | None:
    """Why Run now cannot start here, or None."""
    if not settings.STRIPE_API_KEY:
        return ("STRIPE_API_KEY is not set in the dashboard's environment (with STRIPE_API_BASE "
                "for a local Stripe server), so it cannot run reconciliation; "
                "`python -m jobs reconcile` works wherever the key is set.")
    return writes.problem(settings)


def show_five(run: dict) -> None:
    text.metric_row([dict(label=label, value=value, help=text.markdown_literal(help_text))
                     for label, value, help_text in rf.five_numbers(run)])


def describe_run(run: dict) -> str:
    mode = "dry run, nothing changed" if run.get("dry_run") else "real run"
    when = run.get("finished_at") or run.get("started_at")
    seconds = (run.get("duration_ms") or 0) / 1000
    return (f"Run #{run['id']} ({mode}, started from {run['trigger']}), last {run['lookback_days']} "
            f"days, finished {when:%Y-%m-%d %H:%M} UTC in {seconds:.1f}s: "
            f"{metrics.plural(run.get('sessions_checked'), 'session')} checked with "
            f"{metrics.plural(run.get('stripe_requests'), 'Stripe request')}.")


def last_run_section() -> None:
    last = data.query_row("reconciliation_last_run")
    if not last:
        st.info("**No reconciliation has run yet.** Start one below, or from a terminal or cron: "
                "`python -m jobs reconcile`.", icon=":material/balance:")
        return
    show_five(last)
    st.caption(describe_run(last))
    if last["status"] == "failed":
        st.error(f"**The last run failed** and its numbers are incomplete: {markdown_literal(last.get('error'))}",
                 icon=":material/error:")


PROGRESS_KEY = "reconcile_progress_seen"  # the highest counters shown so far, per run


def progress_panel(launch: writes.BackgroundRun | None) -> None:
    """A running reconciliation (``RECONCILE.follow`` draws this once a second until it ends)."""
    # Only while its lock is held: a row left 'running' by a killed process is not this run's.
    running_run = fetch_one(data.get_engine(), "reconciliation_running_run") if RECONCILE.running() else None
    row = running_run or {}
    if launch is None:
        st.warning("**A reconciliation run is already in progress** (started from "
                   f"{row.get('trigger', 'elsewhere')}); Run now is available again when it ends.",
                   icon=":material/hourglass_top:")
    counters = rf.progress_counters(running_run, st.session_state.get(PROGRESS_KEY))
    st.session_state[PROGRESS_KEY] = counters
    line, done = rf.progress_summary(counters)
    st.info(f"**Run #{counters['id'] or '…'} in progress**: {line}", icon=":material/sync:")
    if done is not None:
        st.progress(done)


def show_outcome(outcome: writes.Outcome) -> None:
    report = outcome.report
    if outcome.state == "busy":
        st.warning(f"**Not started**: {markdown_literal(outcome.reason)}", icon=":material/hourglass_top:")
        return
    if report is None or "run_id" not in report:
        st.error(f"**The run did not finish**: {markdown_literal(outcome.reason or f'exit code {outcome.exit_code}')}",
                 icon=":material/error:")
        return
    run_id = int(report["run_id"])
    run = data.query_row("reconciliation_run", run_id=run_id)
    if outcome.state == "failed":
        st.error(f"**Run #{run_id} failed**: {markdown_literal((run or {}).get('error') or outcome.reason)}",
                 icon=":material/error:")
        return
    st.success(f"**Run #{run_id} finished.** {describe_run(run) if run else ''}",
               icon=":material/task_alt:")
    # The numbers at the top of the page are this run's already, unless another run ended since.
    if data.query_row("reconciliation_last_run").get("id") != run_id:
        show_five(run or report)
    kinds = data.query_df("reconciliation_kinds_for_run", run_id=run_id)
    if not kinds.empty:
        text.dataframe(rf.kinds_table(kinds), hide_index=True, column_config=KIND_COLUMNS)
    if outcome.state == "needs_person":
        if (run or report).get("dry_run"):
            st.info("A real run would put the items that need a person in the review queue; "
                    "this dry run queued nothing.", icon=":material/person_alert:")
        else:
            st.warning("Items need a person: see the review queue below.", icon=":material/person_alert:")


def run_now_section(settings) -> None:
    st.subheader("Run now")
    if RECONCILE.show(progress_panel, show_outcome):
        return
    blocker = run_blocker(settings)
    if blocker:
        st.info(blocker, icon=":material/info:")
    with st.form("reconciliation_run_now"):
        left, right = st.columns(2)
        lookback = left.number_input("Lookback days", min_value=1, max_value=3650, value=7, step=1,
                                     help="Check Checkout Sessions and registrations created in this many "
                                     "last days.")
        dry_run = right.checkbox("Dry run", help="Record what would be done; change no registration.")
        submitted = st.form_submit_button("Run now", type="primary", icon=":material/play_arrow:",
                                          disabled=blocker is not None)
    if submitted:
        refusal = auth.write_refusal(settings)
        if refusal:
            st.error(refusal, icon=":material/block:")
            return
        if RECONCILE.running():
            st.warning("**A reconciliation run is already in progress**; try again when it ends.",
                       icon=":material/hourglass_top:")
            return
        args = ["--lookback-days", int(lookback)] + ["--dry-run"] * bool(dry_run)
        refused = RECONCILE.start(*args)  # returns only when nothing was started
        st.error(f"**Not started**: {markdown_literal(refused)}", icon=":material/error:")


def review_section(settings) -> None:
    st.subheader("Review queue")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/task_alt:")
    items = data.query_df("reconciliation_open_items", limit=500)
    if items.empty:
        if not data.query_row("reconciliation_last_run"):
            # No comfort before anything was checked: an empty queue means nothing yet.
            st.info("The queue is empty because nothing has been checked yet: no reconciliation has run.",
                    icon=":material/hourglass_empty:")
            return
        st.success("Nothing needs a person.", icon=":material/done_all:")
        return
    st.caption(f"{len(items)} open item(s), critical first. Resolve one once it is dealt with "
               "(refund, fix by hand, ...); it stays in the history.")
    table = items.assign(kind=items["kind"].map(rf.kind_label))
    text.dataframe(table[["id", "severity", "kind", "reason", "stripe_checkout_session_id", "registration_id",
                        "created_at", "last_seen_at"]], hide_index=True, column_config=ITEM_COLUMNS)
    labels = {int(row["id"]): rf.item_choice_label(row) for row in items.to_dict("records")}
    linked = links.fresh_params("reconciliation", ["item"]).get("item", [""])[0]
    if linked.isdigit() and int(linked) in labels:  # opened from a link to one item
        st.session_state["reconciliation_item"] = int(linked)
    chosen = st.selectbox("Item", list(labels), format_func=labels.get, key="reconciliation_item")
    item = data.query_row("reconciliation_item", item_id=int(chosen))
    if not item:
        return
    st.markdown(f"**{markdown_literal(rf.kind_label(item['kind']))}** ({markdown_literal(item['severity'])}): "
                f"{markdown_literal((item.get('details') or {}).get('reason', ''))}")
    text.dataframe(rf.facts_table(item.get("details")), hide_index=True,
                 column_config={"field": "Field", "local": "Local registration"})
    session_url = stripe_session_url(item.get("stripe_checkout_session_id"))
    if session_url:
        st.link_button("Open the Checkout Session in the Stripe Dashboard", session_url,
                       icon=":material/open_in_new:")
    blocker = writes.problem(settings)
    if blocker:
        st.info(blocker, icon=":material/info:")
    with st.form(f"reconciliation_resolve_{item['id']}", clear_on_submit=True):
        note = st.text_area("Resolution note", placeholder="What was done: refunded, fixed the row by hand, …")
        by = writes.actor()
        st.caption(f"Recorded as resolved by {markdown_literal(by)} (the logged-in identity).")
        resolve = st.form_submit_button("Resolve", icon=":material/check:", disabled=blocker is not None)
    if resolve:
        refusal = auth.write_refusal(settings)
        if refusal:
            st.error(refusal, icon=":material/block:")
            return
        by = auth.current_identity()
        try:
            writes.call(review.resolve_item, int(item["id"]), note=note, by=by, now=data.utc_now())
        except (review.ItemNotOpen, ConfigError) as exc:
            st.error(str(exc), icon=":material/error:")
            return
        except writes.WriteFailed as exc:
            st.error(f"Could not save the resolution: {markdown_literal(exc)}", icon=":material/error:")
            return
        data.refresh()
        st.session_state[FLASH_KEY] = f"Item #{item['id']} resolved by {markdown_literal(by)}."
        st.rerun()


def history_section() -> None:
    st.subheader("History")
    history = data.query_df("reconciliation_run_history", limit=200)
    text.chart(rf.run_history_chart, history, key="reconciliation_history")
    if not history.empty:
        with st.expander("Last run" if len(history) == 1 else f"Last {len(history)} runs"):
            text.dataframe(rf.history_table(history), hide_index=True, column_config=HISTORY_COLUMNS)
    resolved = data.query_df("reconciliation_resolved_items", limit=200)
    if not resolved.empty:
        with st.expander(f"Resolved items ({len(resolved)} most recent)"):
            text.dataframe(resolved.assign(kind=resolved["kind"].map(rf.kind_label)), hide_index=True,
                         column_config=ITEM_COLUMNS)


st.title("Reconciliation")
st.caption("Stripe's Checkout Sessions compared with the local registrations: obvious mismatches "
           "are fixed automatically, the rest wait here for a person. Below: Stripe's events the "
           "app never recorded.")
page_settings = get_settings()
RECONCILE.collect_finished()
last_run_section()
run_now_section(page_settings)
review_section(page_settings)
history_section()
missed_section.render(page_settings)
