"""The dashboard in Debian's Chromium under ``streamlit run`` (marker ``browser``)."""
