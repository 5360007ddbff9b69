import streamlit as st

st.title("Funnel")
st.info("This page is being built.")
