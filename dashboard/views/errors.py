"""Errors: what fails, how often and since when; whether retries recovered the failures."""

import streamlit as st

from dashboard import data, figures
from dashboard import text
from dashboard.columns import utc_time

TOP_FINGERPRINTS = 25

window = data.current_window()
st.title("Errors")

outcomes = data.query_df("failure_outcomes", start=window.start, end=window.end)
fingerprints = data.query_df("error_fingerprints", start=window.start, end=window.end, limit=TOP_FINGERPRINTS)
if outcomes.empty and fingerprints.empty:
    st.success(f"No failed or retried events in the {window.label}.", icon=":material/check_circle:")
    st.stop()

still_failing, recovered, retrying = (int(outcomes[c].sum()) for c in ("still_failing", "recovered", "retrying"))
cols = st.columns(3)
cols[0].metric("Still failing", f"{still_failing:,}", help="Events whose latest attempt failed.", border=True)
cols[1].metric("Recovered", f"{recovered:,}", help="Completed on a later attempt (attempts > 1).", border=True)
cols[2].metric("Retrying", f"{retrying:,}", help="Pending or processing again after an earlier attempt.",
               border=True)

failures = data.query_df("failures_by_bucket_and_type", start=window.start, end=window.end, bucket=window.bucket)
text.plotly_chart(figures.failures_by_type_chart(failures, bucket=window.bucket, x_range=(window.start, window.end)),
                key="failures_by_type")
text.plotly_chart(figures.outcomes_chart(outcomes), key="outcomes")

st.subheader("Top error messages")
st.caption("Messages grouped with ids, e-mail addresses and numbers replaced by placeholders; "
           "'still failing' counts the events of that group whose latest attempt failed.")
if fingerprints.empty:
    st.info("The failed events carry no error message.")
else:
    text.dataframe(fingerprints, hide_index=True, key="fingerprints", column_config={
        "fingerprint": st.column_config.TextColumn("Error (normalised)", width="large"),
        "events": st.column_config.NumberColumn("Events"),
        "still_failing": st.column_config.NumberColumn("Still failing"),
        "first_seen": utc_time("First seen"),
        "last_seen": utc_time("Last seen"),
        "event_types": "Event types",
        "example": st.column_config.TextColumn("Example message"),
    })
