import streamlit as st

st.title("Reconciliation")
st.info("This page is being built.")
