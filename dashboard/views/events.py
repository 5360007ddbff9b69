import streamlit as st

st.title("Events")
st.info("This page is being built.")
