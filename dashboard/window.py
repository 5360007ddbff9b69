"""The time window every page looks at, as plain data computed from ``now``.

No Streamlit here: the sidebar (dashboard/chrome.py) turns the user's choice into a Window
with ``resolve_window`` and the pages pass ``window.start`` / ``window.end`` to the queries.
All times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
CUSTOM = "Custom"
CHOICES = [*PRESETS, CUSTOM]
# More hourly bars than this make an unreadable chart (and a needlessly long series): a week
# of hours (168 bars) still reads; 30 days (720 bars) does not, so it is shown per day.
MAX_HOURLY_BUCKETS = 24 * 7


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC, the chart bucket ('hour' or 'day') and a label for headings."""

    start: datetime
    end: datetime
    bucket: str
    label: str

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def previous(self) -> "Window":
        """The window of the same length right before this one (for KPI deltas)."""
        return Window(self.start - self.length, self.start, self.bucket, f"previous {self.label}")

    def with_bucket(self, bucket: str) -> "Window":
        if bucket not in allowed_buckets(self):
            raise ValueError(f"bucket {bucket!r} is not available for {self.label}")
        return Window(self.start, self.end, bucket, self.label)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(timezone.utc)


def resolve_window(choice: str, now: datetime, *, custom: tuple[date, date] | None = None) -> Window:
    """The window for a sidebar choice.

    Preset windows end at the start of the minute after ``now``: an event received this
    minute is included, and every rerun within the same minute asks the cache the same
    question. A custom range covers whole UTC days, both ends included.
    """
    now = _utc(now)
    if choice in PRESETS:
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = end - PRESETS[choice]
        bucket = "day" if choice == "30d" else "hour"
        return Window(start, end, bucket, f"last {choice}")
    if choice != CUSTOM:
        raise ValueError(f"unknown window {choice!r}; choose one of {', '.join(CHOICES)}")
    if not custom:
        raise ValueError("a custom window needs a start and an end date")
    first, last = sorted(custom)
    start = datetime.combine(first, time(), tzinfo=timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=timezone.utc)
    bucket = "hour" if end - start <= timedelta(days=3) else "day"
    label = f"{first.isoformat()} – {last.isoformat()}" if first != last else first.isoformat()
    return Window(start, end, bucket, label)


def allowed_buckets(window: Window) -> list[str]:
    """Bucket sizes that make a readable chart for this window."""
    if window.length <= timedelta(hours=48):
        return ["hour"]
    if window.length / timedelta(hours=1) > MAX_HOURLY_BUCKETS:
        return ["day"]
    return ["hour", "day"]
