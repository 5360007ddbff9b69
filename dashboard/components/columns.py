"""Table column formats the pages share, so every time reads the same way and says it is UTC."""

from __future__ import annotations

import streamlit as st


def utc_time(label: str, *, seconds: bool = False):
    """A timestamp column headed ``label (UTC)``, to the minute unless ``seconds``."""
    return st.column_config.DatetimeColumn(f"{label} (UTC)",
                                           format="YYYY-MM-DD HH:mm:ss" if seconds else "YYYY-MM-DD HH:mm")


def row_id(label: str):
    """A numeric id shown as a plain number (no thousands separator)."""
    return st.column_config.NumberColumn(label, format="%d")
