"""The Streamlit dashboard: ``python -m dashboard`` (or ``streamlit run dashboard/app.py``)."""
