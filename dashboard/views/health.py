import streamlit as st

st.title("Health")
st.info("This page is being built.")
