"""Window math: a table of (choice, now) -> window, no clock involved."""

from datetime import date, datetime, timedelta, timezone

import pytest

from dashboard.window import Window, allowed_buckets, resolve_window

UTC = timezone.utc
NOW = datetime(2026, 11, 20, 14, 37, 12, 500, tzinfo=UTC)


@pytest.mark.parametrize("choice, start, end, bucket", [
    ("24h", datetime(2026, 11, 19, 14, 38, tzinfo=UTC), datetime(2026, 11, 20, 14, 38, tzinfo=UTC), "hour"),
    ("7d", datetime(2026, 11, 13, 14, 38, tzinfo=UTC), datetime(2026, 11, 20, 14, 38, tzinfo=UTC), "hour"),
    ("30d", datetime(2026, 10, 21, 14, 38, tzinfo=UTC), datetime(2026, 11, 20, 14, 38, tzinfo=UTC), "day"),
])
def test_presets_end_at_the_next_minute(choice, start, end, bucket):
    window = resolve_window(choice, NOW)
    assert (window.start, window.end, window.bucket) == (start, end, bucket)
    assert window.start <= NOW < window.end


def test_same_minute_gives_the_same_window_so_the_cache_is_reused():
    assert resolve_window("24h", NOW) == resolve_window("24h", NOW.replace(second=59))


def test_now_in_another_timezone_is_converted():
    paris = timezone(timedelta(hours=1))
    assert resolve_window("24h", NOW.astimezone(paris)) == resolve_window("24h", NOW)
    with pytest.raises(ValueError):
        resolve_window("24h", NOW.replace(tzinfo=None))


def test_previous_window_has_the_same_length_right_before():
    window = resolve_window("7d", NOW)
    previous = window.previous
    assert previous.end == window.start and previous.length == timedelta(days=7)


@pytest.mark.parametrize("first, last, start_day, end_day, bucket", [
    (date(2026, 11, 1), date(2026, 11, 1), 1, 2, "hour"),     # one whole day
    (date(2026, 11, 3), date(2026, 11, 1), 1, 4, "hour"),     # reversed picks are sorted; 3 days
    (date(2026, 11, 1), date(2026, 11, 10), 1, 11, "day"),
])
def test_custom_range_covers_whole_days(first, last, start_day, end_day, bucket):
    window = resolve_window("Custom", NOW, custom=(first, last))
    assert window.start == datetime(2026, 11, start_day, tzinfo=UTC)
    assert window.end == datetime(2026, 11, end_day, tzinfo=UTC)
    assert window.bucket == bucket


def test_bad_choices_are_refused():
    with pytest.raises(ValueError):
        resolve_window("1y", NOW)
    with pytest.raises(ValueError):
        resolve_window("Custom", NOW)


@pytest.mark.parametrize("days, buckets", [(1, ["hour"]), (7, ["hour", "day"]), (8, ["day"]), (30, ["day"]),
                                           (90, ["day"])])
def test_allowed_buckets(days, buckets):
    window = Window(NOW - timedelta(days=days), NOW, "day", "x")
    assert allowed_buckets(window) == buckets


def test_with_bucket_refuses_unreadable_charts():
    window = resolve_window("24h", NOW)
    with pytest.raises(ValueError):
        window.with_bucket("day")
    assert resolve_window("7d", NOW).with_bucket("day").bucket == "day"
