"""KPI tiles and the silence warning, from query rows and a fixed now."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from core.checkout import format_money
from core.formatting import format_duration, format_percent
from dashboard.metrics import amounts_column, event_kpis, silence_warning

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("seconds, text", [
    (None, "–"), (float("nan"), "–"), (0.85, "850 ms"), (12.34, "12.3 s"), (420, "7 min"),
    (3 * 3600 + 5 * 60, "3 h 5 min"), (7200, "2 h"), (52 * 3600, "2 d 4 h"), (72 * 3600, "3 d"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("amount, currency, shown", [
    (19900, "eur", "199.00 EUR"), (123456789, "usd", "1,234,567.89 USD"), (500, "jpy", "500 JPY"),
    (1000, "kwd", "1.000 KWD"), (0, "gbp", "0.00 GBP"), (None, "eur", None),
])
def test_format_money_uses_the_currency_s_minor_unit(amount, currency, shown):
    assert format_money(amount, currency) == shown


def test_amounts_column_formats_each_row_in_its_own_currency():
    rows = pd.DataFrame({"amount_total": [19900, 500, None], "currency": ["eur", "jpy", "usd"]})
    assert amounts_column(rows) == ["199.00 EUR", "500 JPY", None]


def test_format_percent():
    assert format_percent(0.98765) == "98.8%" and format_percent(None) == "–"


def test_kpis_with_deltas_against_the_previous_window():
    current = {"events_received": 1200, "success_rate": 0.95, "failed": 60, "stuck": 2, "p95_duration_ms": 850.0}
    previous = {"events_received": 1000, "success_rate": 0.99, "failed": 10, "stuck": 2, "p95_duration_ms": 800.0}
    tiles = {k.label: k for k in event_kpis(current, previous, stuck_minutes=15)}
    assert (tiles["Events"].value, tiles["Events"].delta) == ("1,200", "+200")
    assert (tiles["Success rate"].value, tiles["Success rate"].delta) == ("95.0%", "-4.0 pp")
    assert (tiles["Failed"].value, tiles["Failed"].delta, tiles["Failed"].delta_color) == ("60", "+50", "inverse")
    assert (tiles["Stuck"].delta, tiles["Stuck"].delta_color) == ("+0", "off")  # no change is not a rise
    assert "15 min" in tiles["Stuck"].help
    assert (tiles["p95 duration"].value, tiles["p95 duration"].delta) == ("850 ms", "+50 ms")


def test_kpis_without_finished_events_or_a_previous_window():
    current = {"events_received": 3, "success_rate": None, "failed": 0, "stuck": 0, "p95_duration_ms": None}
    tiles = {k.label: k for k in event_kpis(current, {}, stuck_minutes=15)}
    assert tiles["Success rate"].value == "–" and tiles["Success rate"].delta is None
    assert tiles["Events"].delta is None and tiles["p95 duration"].value == "–"


@pytest.mark.parametrize("silent_minutes, median_gap_s, expected", [
    (10, 60, None),                    # 10 min silent, 1 min usual: under the 15 min floor
    (16, 60, "No webhook event for 16 min; events usually arrive every 1 min."),
    (50, 1200, None),                  # usual gap 20 min: 3x = 60 min
    (61, 1200, "No webhook event for 1 h 1 min; events usually arrive every 20 min."),
    (16, None, "No webhook event for 16 min."),  # no history of gaps: the floor alone decides
    (14, None, None),
])
def test_silence_warning(silent_minutes, median_gap_s, expected):
    message = silence_warning(NOW - timedelta(minutes=silent_minutes), median_gap_s, NOW)
    if expected is None:
        assert message is None
    else:
        assert message.startswith(expected + " Check that the endpoint is reachable")


def test_no_silence_warning_without_any_event():
    assert silence_warning(None, None, NOW) is None


def test_no_deltas_when_the_window_before_has_no_event():
    from dashboard.metrics import event_kpis

    current = {"events_received": 120, "failed": 3, "stuck": 1, "success_rate": 0.97, "p95_duration_ms": 300}
    empty_before = {"events_received": 0, "failed": 0, "stuck": 0, "success_rate": None, "p95_duration_ms": None}
    assert [k.delta for k in event_kpis(current, empty_before, stuck_minutes=15)] == [None] * 5
    before = {**current, "events_received": 100, "failed": 1}
    assert event_kpis(current, before, stuck_minutes=15)[0].delta == "+20"
