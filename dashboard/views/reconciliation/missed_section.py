"""The Reconciliation page's "Missed events" section: what the sweep found (money at risk
first), Sweep now, Replay (its plan shown and confirmed first), and the sweep history.

Both actions start ``python -m jobs sweep`` in the background through the dashboard's writes
(``dashboard/writes.py``, followed by ``dashboard/components/background_job.py``) and read
the outcome from the exit code and the run record, as Run now does for reconciliation.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.checkout import format_money
from dashboard import data, metrics, writes
from dashboard.components import text
from dashboard.components.background_job import BackgroundJob
from dashboard.components.columns import row_id, utc_time
from dashboard.components.text import markdown_literal
from jobs.replay import sweep
from queries import fetch_one

# The run this browser session started under "sweep_launch", its outcome (shown until the
# next run) under "sweep_result"; a sweep started elsewhere holds the same lock.
SWEEP = BackgroundJob("sweep", slot="sweep_launch", result_key="sweep_result", lock=sweep.JOB)
CONFIRM_KEY = "sweep_replay_confirm"
OPEN_LISTED = 200

OPEN_COLUMNS = {
    "stripe_event_id": "Event", "event_type": "Type", "amount_shown": "Amount",
    "stripe_created_at": utc_time("Stripe created"), "status": "Status",
    "stripe_says_delivered": st.column_config.CheckboxColumn(
        "Stripe says delivered", help="The endpoint answered 2xx but recorded nothing."),
    "replay_attempts": st.column_config.NumberColumn("Replays"),
    "last_replay_error": st.column_config.TextColumn("Last replay error", width="medium"),
    "retry_deadline": utc_time("Stripe retries until"),
    "retention_deadline": utc_time("Stripe forgets it"),
}
HISTORY_COLUMNS = {
    "id": row_id("Sweep"), "status": "Status", "trigger": "Started from",
    "started_at": utc_time("Started"),
    "dry_run": st.column_config.CheckboxColumn("Dry run"),
    "replay": st.column_config.CheckboxColumn("Replay"),
    "lookback_hours": st.column_config.NumberColumn("Lookback (h)"),
    "stripe_events_found": st.column_config.NumberColumn("Events at Stripe"),
    "missing_found": st.column_config.NumberColumn("Missing"),
    "delivered_unrecorded": st.column_config.NumberColumn("2xx, unrecorded"),
    "replayed": st.column_config.NumberColumn("Replayed"),
    "recovered": st.column_config.NumberColumn("Recovered"),
    "still_missing": st.column_config.NumberColumn("Still missing"),
    "stripe_requests": st.column_config.NumberColumn("Stripe requests"),
    "error": st.column_config.TextColumn("Error", width="large"),
}


def blockers(settings) -> tuple[str | None, str | None]:
    """Why Sweep now, and why Replay, cannot start from here (None when they can)."""
    problem = writes.problem(settings)
    if not settings.STRIPE_API_KEY:
        problem = problem or ("STRIPE_API_KEY is not set in the dashboard's environment, so it cannot "
                              "ask Stripe; `python -m jobs sweep` works wherever the key is set.")
    replay = problem
    if not replay and not settings.MONITOR_REPLAY_URL:
        replay = "MONITOR_REPLAY_URL is not set: there is no endpoint to re-deliver to."
    if not replay and not settings.STRIPE_WEBHOOK_SECRET:
        replay = "STRIPE_WEBHOOK_SECRET is not set: re-deliveries are signed with it."
    return problem, replay


def describe(run: dict) -> str:
    mode = " (dry run)" if run.get("dry_run") else " with replay" if run.get("replay") else ""
    return (f"Sweep #{run['id']}{mode} of the last {run['lookback_hours']} h, started from "
            f"{run['trigger']} at {run['started_at']:%Y-%m-%d %H:%M} UTC: "
            f"{metrics.plural(run['stripe_events_found'], 'event')} at Stripe, {int(run['missing_found']):,} "
            f"missing ({int(run['delivered_unrecorded']):,} answered 2xx unrecorded), "
            f"{int(run['replayed']):,} replayed, {int(run['recovered']):,} recovered, "
            f"{int(run['still_missing']):,} still missing.")


def open_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Open missed events as shown: amounts in their currency, money first (query order)."""
    shown = rows.assign(amount_shown=metrics.amounts_column(rows.rename(columns={"amount": "amount_total"})))
    return shown[[c for c in OPEN_COLUMNS if c in shown.columns]]


def progress(launch: writes.BackgroundRun | None) -> None:
    """A running sweep (``SWEEP.follow`` draws this once a second until it ends)."""
    who = "this page" if launch is not None else "elsewhere (schedule or a terminal)"
    row = fetch_one(data.get_engine(), "sweep_progress") or {}
    done = row.get("progress") or {}
    so_far = (f" {metrics.plural(done.get('events_read', 0), 'event')} read in "
              f"{metrics.plural(done.get('pages', 0), 'page')}, "
              f"{int(done.get('missing', 0)):,} missing so far." if done else "")
    st.info(f"**A sweep is running** (started from {who}).{so_far} The actions come back when it ends.",
            icon=":material/sync:")


def show_outcome(outcome: writes.Outcome) -> None:
    report = outcome.report or {}
    if outcome.state == "busy":
        st.warning(f"**Not started**: {markdown_literal(outcome.reason)}", icon=":material/hourglass_top:")
        return
    if "run_id" not in report:
        st.error(f"**The sweep did not finish**: {markdown_literal(outcome.reason or f'exit code {outcome.exit_code}')}",
                 icon=":material/error:")
        return
    run = data.query_row("sweep_run", run_id=int(report["run_id"]))
    if outcome.state == "failed" or not run:
        st.error(f"**Sweep #{report['run_id']} failed**: {markdown_literal((run or {}).get('error') or outcome.reason)}",
                 icon=":material/error:")
        return
    (st.warning if outcome.state == "needs_person" else st.success)(
        f"**{describe(run)}**", icon=":material/person_alert:" if outcome.state == "needs_person"
        else ":material/task_alt:")


def start(*args: str) -> None:
    refused = SWEEP.start(*args)  # returns only when nothing was started
    st.error(f"**Not started**: {markdown_literal(refused)}", icon=":material/error:")


def render(settings) -> None:
    """The whole section."""
    SWEEP.collect_finished()
    st.subheader("Missed events")
    st.caption("Events Stripe sent that the app never recorded, found by asking Stripe's Events API "
               "(`python -m jobs sweep`; the schedule sweeps every few minutes).")
    open_rows = data.query_df("missed_events_open_list", limit=OPEN_LISTED)
    money = data.query_df("missed_money_at_risk").to_dict("records")
    if open_rows.empty:
        st.success("No missed event waits for a replay.", icon=":material/done_all:")
    else:
        at_risk = ", ".join(a for a in (format_money(m["amount"], m["currency"]) for m in money) if a)
        st.warning(f"**{len(open_rows):,} missed event(s)** without a completed row"
                   + (f"; money at risk: {at_risk}" if at_risk else "") + ".", icon=":material/report:")
        text.dataframe(open_table(open_rows), hide_index=True, key="missed_open", column_config=OPEN_COLUMNS)

    if not SWEEP.show(progress, show_outcome):
        problem, replay_problem = blockers(settings)
        if problem or replay_problem:
            st.info(problem or replay_problem, icon=":material/info:")
        left, middle, _ = st.columns([2, 2, 3], vertical_alignment="bottom")
        lookback = left.number_input("Lookback (hours)", min_value=1, max_value=sweep.MAX_LOOKBACK_HOURS,
                                     value=sweep.DEFAULT_LOOKBACK_HOURS, key="sweep_lookback",
                                     help="Stripe keeps events for 30 days (720 hours).")
        if middle.button("Sweep now", icon=":material/travel_explore:", key="sweep_now",
                         disabled=problem is not None):
            start("--lookback-hours", str(int(lookback)))
        if st.button(f"Replay {len(open_rows):,} missed event(s)…", icon=":material/replay:", key="sweep_replay",
                     disabled=replay_problem is not None or open_rows.empty):
            st.session_state[CONFIRM_KEY] = True
        if st.session_state.get(CONFIRM_KEY) and not open_rows.empty:
            with st.container(border=True):
                st.markdown("**The plan**: sweep the last "
                            f"{int(lookback)} h, then re-deliver every open missed event (the table above, "
                            "largest amount first) to `MONITOR_REPLAY_URL`, signed as Stripe signs; each "
                            "becomes recovered once the app has recorded it completed.")
                confirm, cancel = st.columns([1, 5])
                if confirm.button("Yes, replay", type="primary", key="sweep_replay_confirmed"):
                    del st.session_state[CONFIRM_KEY]
                    start("--lookback-hours", str(int(lookback)), "--replay")
                if cancel.button("Cancel", key="sweep_replay_cancelled"):
                    del st.session_state[CONFIRM_KEY]
                    st.rerun()

    history = data.query_df("sweep_history", limit=50)
    if not history.empty:
        st.caption(describe(history.iloc[0].to_dict()))
        with st.expander(f"Last {len(history)} sweeps"):
            text.dataframe(history, hide_index=True, key="sweep_history", column_config=HISTORY_COLUMNS,
                         column_order=list(HISTORY_COLUMNS))
