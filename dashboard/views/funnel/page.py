"""Funnel: registrations created -> checkout started -> paid -> completed; time to completion;
registrations left pending."""

from datetime import timedelta

import streamlit as st

from core.formatting import format_duration, format_percent
from dashboard import data, metrics
from dashboard.components import text
from dashboard.components.columns import utc_time
from dashboard.views.funnel import affected, figures

STALE_AFTER = {"1 hour": timedelta(hours=1), "24 hours": timedelta(hours=24), "7 days": timedelta(days=7)}
STALE_LIST_ROWS = 200
STALE_COUNT_CAP = 10_000
AFFECTED_LIST_ROWS = 500

window = data.current_window()
now = data.utc_now()
st.title("Funnel")

by_bucket = data.query_df("funnel_by_bucket", start=window.start, end=window.end, bucket=window.bucket)
times = data.query_row("completion_times", start=window.start, end=window.end)
totals = figures.funnel_totals(by_bucket)

if totals["created"] == 0:
    st.info(f"No registrations were created in the {window.label}.", icon=":material/inbox:")
else:
    created = totals["created"]
    text.metric_row([
        dict(label=label, value=f"{totals[step]:,}", delta_color="off", delta_arrow="off",
             delta=None if step == "created" else f"{format_percent(totals[step] / created)} of created")
        for step, label in figures.FUNNEL_STEPS])
    # Short labels (the help says the rest).
    text.metric_row([
        dict(label="Median to complete", value=format_duration(times.get("median_seconds")),
             help="Median time from a registration's creation to its completion."),
        dict(label="p95 to complete", value=format_duration(times.get("p95_seconds")),
             help="95 % of the completed registrations completed within this time of their creation."),
        dict(label="Paid, not completed", value=f"{totals['paid'] - totals['completed']:,}",
             help="A payment event was recorded but the registration is not completed: "
                  "reconciliation fixes or queues these."),
    ])
    left, right = st.columns(2)
    text.chart(figures.funnel_chart, totals, where=left, key="funnel")
    text.chart(figures.conversion_chart, by_bucket, bucket=window.bucket, x_range=(window.start, window.end),
               where=right, key="conversion")

st.subheader("Who is affected")
# Whenever they paid: someone who paid 40 days ago and has nothing is still affected. The
# query reads a set kept by triggers (migrations/functions/paid_unfinished.sql), so this
# costs the same at any size.
affected_rows = data.query_df("affected_registrations", limit=AFFECTED_LIST_ROWS)
if affected_rows.empty:
    st.success("Nobody paid without a completed registration, and no review item concerns a registration.",
               icon=":material/check_circle:")
else:
    affected_total = int(affected_rows["total"].iloc[0])
    st.caption(f"{affected_total:,} {'person' if affected_total == 1 else 'people'} (whatever the window): "
               "paid but the registration is not completed, or an open review item "
               "concerns the registration; oldest first"
               + (f", the first {AFFECTED_LIST_ROWS} listed." if affected_total > AFFECTED_LIST_ROWS else "."))
    text.dataframe(affected.affected_table(affected_rows, now), hide_index=True, key="affected",
                   column_order=["email", "amount", "status", "age", "session", "events", "stripe", "review"],
                   column_config={
                       "email": "E-mail", "amount": "Amount", "status": "Status", "age": "Age",
                       "session": "Checkout Session",
                       "events": st.column_config.LinkColumn("Events", display_text="events"),
                       "stripe": st.column_config.LinkColumn("Stripe", display_text="open in Stripe"),
                       "review": st.column_config.LinkColumn("Review item", display_text="review item"),
                   })

st.subheader("Stale pending registrations")
# Checkout Sessions expire after 24 hours by default, so a registration pending for longer
# will not be completed by a webhook any more.
stale_label = st.segmented_control("Pending for longer than", list(STALE_AFTER), default="24 hours",
                                   key="funnel_stale_after") or "24 hours"
stale_before = now.replace(second=0, microsecond=0) - STALE_AFTER[stale_label]
stale = data.query_df("stale_pending_registrations", stale_before=stale_before, limit=STALE_LIST_ROWS)
if stale.empty:
    st.success(f"No registration has been pending for longer than {stale_label}.", icon=":material/check_circle:")
else:
    total = int(stale["total"].iloc[0])
    # queries/funnel.sql counts up to STALE_COUNT_CAP + 1.
    counted = (f"More than {STALE_COUNT_CAP:,} registrations" if total > STALE_COUNT_CAP
               else metrics.plural(total, 'registration'))
    st.caption(f"{counted} pending for longer than {stale_label} (whatever the window)"
               + (f"; the oldest {STALE_LIST_ROWS} are listed." if total > STALE_LIST_ROWS else "."))
    shown = stale.assign(amount=metrics.amounts_column(stale))
    text.dataframe(shown[["created_at", "email", "amount", "stripe_checkout_session_id", "id"]], hide_index=True,
                 key="stale", column_config={
                     "created_at": utc_time("Created"),
                     "email": "E-mail", "amount": "Amount", "stripe_checkout_session_id": "Checkout Session",
                     "id": "Registration",
                 })
