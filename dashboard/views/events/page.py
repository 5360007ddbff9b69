"""Events: filter, search and page through the recorded events; one event's full detail."""

from datetime import timedelta

import streamlit as st

from core.error_policy import RECOVERY_ACTIONS
from core.formatting import format_duration
from dashboard import data, metrics
from dashboard.components import charts, links, text
from dashboard.components.columns import utc_time
from dashboard.components.links import stripe_event_url, stripe_session_url
from dashboard.components.text import markdown_literal
from dashboard.views.events import explorer

window = data.current_window()
st.title("Events")

# Opened from a link (the status verdict, the Overview's tiles, who is affected): start with
# the filters the link names.
linked = links.fresh_params("events", ["view", "status", "type", "q", "since", "group"])
if linked:
    view = linked.get("view", [""])[0]
    st.session_state["events_view"] = "stuck" if view == "stuck" else "group" if linked.get("group") else None
    st.session_state["events_group"] = linked.get("group", [None])[0]
    st.session_state["events_missed"] = view == "missed"
    st.session_state["events_statuses"] = [s for s in linked.get("status", []) if s in charts.STATUSES]
    st.session_state["events_linked_types"] = linked.get("type", [])
    st.session_state["events_search"] = linked.get("q", [""])[0]
    st.session_state["events_since"] = linked.get("since", [None])[0]

if st.session_state.get("events_view") == "group" and st.session_state.get("events_group"):
    fingerprint = st.session_state["events_group"]
    failing = data.query_df("error_group_failing_events", fingerprint=fingerprint, start=window.start,
                            end=window.end, limit=explorer.EXPORT_MAX_ROWS)
    if st.button("Show all events", icon=":material/list:", key="events_group_back"):
        st.session_state["events_view"] = None
        st.rerun()
    st.markdown(f"**Error group** {markdown_literal(fingerprint)}")
    if failing.empty:
        st.success(f"No event of this group is failing now (failures in the {window.label}).",
                   icon=":material/task_alt:")
        st.stop()
    st.caption(f"{metrics.plural(len(failing), 'event')} of this group failed now (failed attempts in the "
               f"{window.label}), oldest first. Search an event id to see its detail.")
    text.dataframe(failing, hide_index=True, key="group_events", column_config={
        "stripe_event_id": st.column_config.TextColumn("Event id"), "event_type": "Type",
        "error_category": "Category", "recovery_action": "Recovery action",
        "next_retry_at": utc_time("Next retry", seconds=True), "attempts": st.column_config.NumberColumn("Attempts"),
        "created_at": utc_time("Received", seconds=True)})
    st.stop()

if st.session_state.get("events_view") == "stuck":
    stuck_minutes = data.stuck_minutes()
    stuck_before = data.utc_now().replace(second=0, microsecond=0) - timedelta(minutes=stuck_minutes)
    stuck = data.query_df("stuck_events_list", stuck_before=stuck_before, limit=explorer.EXPORT_MAX_ROWS)
    if st.button("Show all events", icon=":material/list:"):
        st.session_state["events_view"] = None
        st.rerun()
    if stuck.empty:
        st.success(f"No event is stuck: none has been processing for more than {stuck_minutes} min.",
                   icon=":material/task_alt:")
        st.stop()
    st.caption(f"{metrics.plural(len(stuck), 'event')} still processing after more than {stuck_minutes} min "
               "(whatever the window), oldest first: the handler died or hangs on them.")
    text.dataframe(stuck, hide_index=True, key="stuck_events", column_config={
        "stripe_event_id": st.column_config.TextColumn("Event id"), "event_type": "Type",
        "processing_status": "Status", "attempts": st.column_config.NumberColumn("Attempts"),
        "created_at": utc_time("Received", seconds=True),
        "processing_started_at": utc_time("Processing since", seconds=True),
        "livemode": st.column_config.CheckboxColumn("Live")})
    st.stop()

if st.toggle("Only events that never arrived", key="events_missed",
             help="Events Stripe sent in the window that have no row here, as found by the "
                  "sweep (python -m jobs sweep), with what became of them."):
    missed = data.query_df("missed_events_page", start=window.start, end=window.end,
                           limit=explorer.EXPORT_MAX_ROWS)
    if missed.empty:
        st.info(f"No missed event in the {window.label} (as of the last sweep).",
                icon=":material/task_alt:")
        st.stop()
    missed.insert(4, "amount_shown", metrics.amounts_column(
        missed.rename(columns={"amount": "amount_total"})))
    st.caption(f"{metrics.plural(len(missed), 'event')} Stripe sent in the {window.label} that the app never "
               "recorded, newest first. Status: missing (no row), replayed (re-delivered, not "
               "completed yet), arrived (a row came, not completed), recovered (completed).")
    text.dataframe(missed.drop(columns=["amount", "currency"]), hide_index=True, column_config={
        "amount_shown": "amount", "stripe_created_at": utc_time("Stripe created"),
        "found_at": utc_time("found"), "replayed_at": utc_time("replayed"),
        "recovered_at": utc_time("recovered"), "retry_deadline": utc_time("Stripe retries until"),
        "retention_deadline": utc_time("Stripe forgets it"),
    })
    st.stop()

types = data.query_df("event_types", start=window.start, end=window.end)
type_options = sorted(types["event_type"]) if not types.empty else []
linked_types = st.session_state.pop("events_linked_types", None)
if linked_types is not None:
    st.session_state["events_types"] = [t for t in linked_types if t in type_options]
status_col, type_col, search_col = st.columns([2, 3, 4])
statuses = status_col.multiselect("Status", charts.STATUSES, key="events_statuses", placeholder="Any status")
event_types = type_col.multiselect("Event type", type_options,
                                   key="events_types", placeholder="Any type")
typed = search_col.text_input("Search", key="events_search",
                              placeholder="E-mail, Checkout Session id (cs_…), registration id, event id, or words of an error")
search = explorer.clean_search(typed)
if search and len(typed.strip()) > explorer.SEARCH_MAX_CHARS:
    search_col.caption(f"Only the first {explorer.SEARCH_MAX_CHARS} characters are searched for.")

who = explorer.customer_search(search)
start = window.start
if who:
    # A link from "who is affected" covers the person's events since the registration's day.
    since = explorer.parse_day(st.session_state.get("events_since"))
    start = min(start, since) if since else start
filters = dict(start=start, end=window.end, statuses=sorted(statuses),
               event_types=sorted(event_types), search=search)
page_query, count_query = ("events_of_customer_page", "events_of_customer_count") if who else \
    ("events_page", "events_count")
total = int(data.query_row(count_query, **filters).get("events") or 0)
if total == 0:
    hint = "Try another window or fewer filters." if (statuses or event_types or search) else \
        "Choose a longer window in the sidebar."
    st.info(f"No events match in the {window.label}. {hint}", icon=":material/search_off:")
    st.stop()

# A new set of filters gets a new pagination widget, so the list starts again at page 1.
filters_key = explorer.listing_key(window.label, statuses=statuses, event_types=event_types, search=search,
                                   since=start if start < window.start else None)
# A search's count stops past SEARCH_COUNT_CAP (queries/events.sql): "more than 1,000".
capped = not who and search is not None and total > explorer.SEARCH_COUNT_CAP
pages = explorer.page_count(min(total, explorer.SEARCH_COUNT_CAP) if capped else total)
page_number = st.pagination(pages, key=f"events_page_{filters_key}") if pages > 1 else 1
rows = data.query_df(page_query, **filters, limit=explorer.PAGE_SIZE,
                     offset=(page_number - 1) * explorer.PAGE_SIZE)

caption_col, download_col = st.columns([4, 1], vertical_alignment="center")
scope = (f"concerning {who} since {start:%Y-%m-%d}" if who and start < window.start
         else f"concerning {who} in the {window.label}" if who else f"in the {window.label}")
counted = f"More than {explorer.SEARCH_COUNT_CAP:,} events" if capped else metrics.plural(total, 'event')
caption_col.caption(f"{counted} {markdown_literal(scope)}, newest first · page {page_number} of {pages}"
                    + (f" (the newest {explorer.SEARCH_COUNT_CAP:,} are listed: narrow the search or the window)"
                       if capped else "") + ". Select a row to see its detail.")


def _export() -> bytes:
    try:
        return explorer.csv_bytes(data.fetch(page_query, **filters, limit=explorer.EXPORT_MAX_ROWS, offset=0))
    except data.DatabaseProblem as exc:
        return f"error: {exc}\n".encode()


download_col.download_button(
    "Download CSV", data=_export, file_name=f"webhook-events-{window.start:%Y%m%d}-{window.end:%Y%m%d}.csv",
    mime="text/csv", icon=":material/download:",
    help=(f"The newest {explorer.EXPORT_MAX_ROWS:,} filtered events at most" if capped else
          f"All {min(total, explorer.EXPORT_MAX_ROWS):,} filtered events")
         + (f" (the newest {explorer.EXPORT_MAX_ROWS:,})" if total > explorer.EXPORT_MAX_ROWS else ""))

table = text.dataframe(
    rows, key=f"events_table_{filters_key}_{page_number}_{explorer.rows_key(rows['stripe_event_id'])}",
    hide_index=True, on_select="rerun",
    selection_mode="single-row",
    # When, what, how it went and why it failed first; the rest may scroll off to the right.
    column_order=["created_at", "event_type", "processing_status", "attempts", "error_message",
                  "stripe_event_id", "processing_duration_ms", "processed_at", "livemode"],
    column_config={
        "stripe_event_id": st.column_config.TextColumn("Event id"),
        "event_type": "Type",
        "processing_status": "Status",
        "attempts": st.column_config.NumberColumn("Attempts"),
        "created_at": utc_time("Received", seconds=True),
        "processed_at": utc_time("Processed", seconds=True),
        "processing_duration_ms": st.column_config.NumberColumn("Duration (ms)"),
        "error_message": st.column_config.TextColumn("Error", width="medium"),
        "livemode": st.column_config.CheckboxColumn("Live"),
    })

selected_rows = table.selection.rows
if selected_rows:
    picked = rows.iloc[selected_rows[0]]["stripe_event_id"]
else:
    picked = st.selectbox("Event detail", list(rows["stripe_event_id"]), index=None,
                          key=f"events_detail_{filters_key}_{page_number}",
                          placeholder="Select a row above, or pick an event id of this page")
if picked is None:
    st.stop()

event = data.query_row("event_detail", stripe_event_id=picked)
if not event:
    st.warning("This event is no longer in the database (moved to the archive by cleanup?).")
    st.stop()

st.subheader(f"{markdown_literal(event['event_type'])} · {markdown_literal(event['stripe_event_id'])}")
duration = event.get("processing_duration_ms")
text.metric_row([
    dict(label="Status", value=event["processing_status"]),
    dict(label="Attempts", value=event["attempts"]),
    dict(label="Duration", value="–" if duration is None else format_duration(duration / 1000)),
    dict(label="Mode", value="live" if event["livemode"] else "test"),
], border=False)
times = [("received", event.get("created_at")), ("created at Stripe", event.get("stripe_created_at")),
         ("processing started", event.get("processing_started_at")), ("processed", event.get("processed_at"))]
st.caption(" · ".join(f"{label} {value:%Y-%m-%d %H:%M:%S} UTC" for label, value in times if value is not None))
if event.get("error_message"):
    category = f" ({markdown_literal(event['error_category'])})" if event.get("error_category") else ""
    st.error(f"**Error{category}**")
    st.code(event["error_message"], language=None, wrap_lines=True)
if event["processing_status"] == "failed":
    action = RECOVERY_ACTIONS.get(event.get("recovery_action") or "", "-")
    planned = event.get("next_retry_at")
    nxt = f"next automatic retry {planned:%Y-%m-%d %H:%M:%S} UTC" if planned is not None else "no automatic retry planned"
    st.caption(f"Category {event.get('error_category') or 'unknown'} · alert level {event.get('alert_level') or '-'} "
               f"· {nxt}")
    st.text(f"Recovery action: {action}")
if event.get("error_details"):
    with st.expander("Error details"):
        st.json(event["error_details"], expanded=True)
history = data.query_df("event_attempts", stripe_event_id=event["stripe_event_id"])
if not history.empty:
    with st.expander(f"Retry history ({len(history)} attempts)", expanded=event["processing_status"] != "completed"):
        text.dataframe(history, hide_index=True, key="event_attempts", column_config={
            "attempt": st.column_config.NumberColumn("#"), "source": "Run by",
            "started_at": utc_time("Started", seconds=True), "finished_at": utc_time("Ended", seconds=True),
            "duration_ms": st.column_config.NumberColumn("Duration (ms)"), "outcome": "Outcome",
            "error_category": "Category", "error_message": st.column_config.TextColumn("Error", width="medium"),
            "recovery_action": "Recovery action", "alert_level": "Alert level",
            "next_retry_at": utc_time("Next retry planned", seconds=True)})
if event.get("raw_payload"):
    with st.expander("Body as received (PostgreSQL could not store it as JSON)"):
        st.text(event["raw_payload"][:20000])
registration = data.query_row("registration_of_event", stripe_event_id=event["stripe_event_id"])
if registration:
    st.markdown("**Registration it touched**" + (" (archived by cleanup)" if registration.get("archived") else ""))
    text.dataframe(explorer.registration_table(registration), hide_index=True, key="event_registration",
                   column_config={"field": "Field", "value": "Value"})
    session_url = stripe_session_url(registration.get("stripe_checkout_session_id"), bool(event["livemode"]))
    if session_url:
        st.link_button("Open its Checkout Session in the Stripe Dashboard", session_url, icon=":material/open_in_new:")
url = stripe_event_url(event["stripe_event_id"], bool(event["livemode"]))
if url:
    st.link_button("Open in the Stripe Dashboard", url, icon=":material/open_in_new:")
with st.expander("Payload", expanded=False):
    st.json(event["payload"], expanded=1)
