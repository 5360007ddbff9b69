import streamlit as st

st.title("Errors")
st.info("This page is being built.")
