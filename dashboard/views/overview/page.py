"""Overview: are payments being processed right now? KPIs against the previous window, volume,
failure rate, statuses and event types."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.formatting import format_duration
from dashboard import data, metrics, verdict_view
from dashboard.components import charts, text
from dashboard.views.overview import figures
from dashboard.window import allowed_buckets

window = data.current_window()
now = data.utc_now()
stuck_minutes = data.stuck_minutes()

st.title("Overview")

try:
    verdict_view.panel(data.verdict())
except data.DatabaseProblem as exc:
    data.show_problem(exc)

# The stuck threshold is a minute boundary so the cache key changes at most once a minute.
stuck_before = now.replace(second=0, microsecond=0) - timedelta(minutes=stuck_minutes)
current = data.query_row("event_kpis", start=window.start, end=window.end, stuck_before=stuck_before)
previous = data.query_row("event_kpis", start=window.previous.start, end=window.previous.end,
                          stuck_before=stuck_before)
# "Usually" means the last week at most: older traffic says little about today's rhythm,
# and the gap query sorts every event it covers.
gaps = data.query_row("event_gaps", start=max(window.start, window.end - timedelta(days=7)), end=window.end)

# Events Stripe sent that never arrived (found by the sweep) matter most when nothing
# arrives at all, so this comes before the empty state.
missed = metrics.missed_events_alert(data.query_row("missed_events_open"),
                                     data.query_df("missed_money_at_risk").to_dict("records"), now)
if missed:
    st.error(missed, icon=":material/report:")

last_event_at = current.get("last_event_at")
if last_event_at is None:
    st.info("**No webhook events recorded yet.** Once your webhook handler records events "
            "(see the tracking functions in the README), they show up here. To look around first, "
            "load demo data with `python -m jobs demo-data`.", icon=":material/inbox:")
    st.stop()

warning = metrics.silence_warning(last_event_at, gaps.get("median_gap_seconds"), now)
if warning:
    st.warning(warning, icon=":material/notifications_paused:")

tiles = metrics.event_kpis(current, previous, stuck_minutes=stuck_minutes)
text.metric_row([
    *(dict(label=kpi.label, value=kpi.value, delta=kpi.delta, delta_color=kpi.delta_color,
         help=text.markdown_literal(kpi.help) if kpi.help else None)
      for kpi in tiles),
    dict(label="Last event", value=format_duration(max((now - last_event_at).total_seconds(), 0)),
         help=f"Time since the last event, received {last_event_at:%Y-%m-%d %H:%M:%S} UTC."),
])
stuck_now = int(current.get("stuck") or 0)
failed_now = int(current.get("failed") or 0)
if stuck_now or failed_now:  # a number that invites a question links to its answer
    link_cols = st.columns(4)
    if stuck_now:
        verdict_view.link_to("events", f"The {metrics.plural(stuck_now, 'stuck event')}", {"view": "stuck"},
                             where=link_cols[0])
    if failed_now:
        verdict_view.link_to("events", f"The {metrics.plural(failed_now, 'failed event')}", {"status": "failed"},
                             where=link_cols[1])
st.caption(f"Deltas compare the {window.label} with the "
           f"{format_duration(window.length.total_seconds())} before it.")

if not int(current.get("events_received") or 0):
    st.info(f"No events in the {window.label}. Choose a longer window in the sidebar.", icon=":material/inbox:")
    st.stop()

buckets = allowed_buckets(window)
if len(buckets) > 1:
    # One key per window: a bucket picked for the 7d window must not carry over to another
    # window, which starts at its own default bucket.
    bucket = st.segmented_control("Chart buckets", buckets, default=window.bucket,
                                  key=f"overview_bucket_{window.label}",
                                  format_func=lambda b: f"per {b}") or window.bucket
    window = window.with_bucket(bucket)

by_bucket = data.query_df("events_by_bucket", start=window.start, end=window.end, bucket=window.bucket)
types = data.query_df("event_types", start=window.start, end=window.end)
statuses = pd.DataFrame({"processing_status": charts.STATUSES,
                         "events": [int(current.get(s) or 0) for s in charts.STATUSES]})

span = (window.start, window.end)
text.chart(figures.volume_chart, by_bucket, bucket=window.bucket, x_range=span, key="volume")
left, right = st.columns(2)
text.chart(figures.failure_rate_chart, by_bucket, bucket=window.bucket, x_range=span, where=left, key="failure_rate")
text.chart(figures.status_chart, statuses, where=right, key="statuses")
text.chart(figures.event_types_chart, types, key="event_types")
