"""Shared table column formats: every time column says it is UTC, ids read as plain numbers."""

from dashboard.components.columns import row_id, utc_time


def test_time_columns_are_headed_utc_to_the_minute_or_second():
    assert utc_time("Found")["label"] == "Found (UTC)"
    assert utc_time("Found")["type_config"]["format"] == "YYYY-MM-DD HH:mm"
    assert utc_time("Received", seconds=True)["type_config"]["format"] == "YYYY-MM-DD HH:mm:ss"


def test_ids_have_no_thousands_separator():
    assert row_id("Run")["label"] == "Run" and row_id("Run")["type_config"]["format"] == "%d"
