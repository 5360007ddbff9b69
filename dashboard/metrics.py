"""Numbers shown in KPI tiles: formatting, deltas against the previous window, the silence
warning. Plain functions of query rows and ``now`` (no Streamlit), unit-tested."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.checkout import format_money
from core.formatting import format_duration, format_percent
from core.formatting import number as _number

# The endpoint counts as silent when the time since the last event exceeds this many times
# the usual (median) gap, and never before this floor: a quiet night with one event an hour
# should not warn after 3 minutes just because the afternoon was busy.
SILENCE_FACTOR = 3
SILENCE_FLOOR = timedelta(minutes=15)


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    delta: str | None = None
    # Streamlit's delta_color: "normal" (up is good), "inverse" (up is bad), "off".
    delta_color: str = "normal"
    help: str | None = None


def amounts_column(rows) -> list[str | None]:
    """``format_money`` of each row's ``amount_total`` and ``currency`` (query rows as a DataFrame)."""
    return [format_money(amount, currency) for amount, currency in zip(rows["amount_total"], rows["currency"], strict=True)]


def _zero_is_neutral(kpis: list[Kpi]) -> list[Kpi]:
    # Streamlit colours "+0" as a rise; no change should look like no change.
    return [Kpi(k.label, k.value, k.delta, "off", k.help) if k.delta and _number(
        k.delta.replace(",", "").split()[0]) == 0 else k for k in kpis]


def _count_delta(current: Any, previous: Any) -> str | None:
    now, before = _number(current), _number(previous)
    if now is None or before is None:
        return None
    return f"{now - before:+,.0f}"


def event_kpis(current: dict, previous: dict, *, stuck_minutes: int) -> list[Kpi]:
    """The tiles for a window's ``event_kpis`` row, with deltas against the previous window."""
    if not int(_number(previous.get("events_received")) or 0):
        # The window before holds no event (a fresh install, history cleaned up): "+5,627"
        # against nothing says nothing, so no tile shows a delta.
        previous = {}
    rate, rate_before = _number(current.get("success_rate")), _number(previous.get("success_rate"))
    p95, p95_before = _number(current.get("p95_duration_ms")), _number(previous.get("p95_duration_ms"))
    return _zero_is_neutral([
        Kpi("Events", f"{int(current.get('events_received') or 0):,}",
            _count_delta(current.get("events_received"), previous.get("events_received")), "off",
            "Webhook events recorded in the window; the delta compares with the window before."),
        Kpi("Success rate", format_percent(rate),
            None if rate is None or rate_before is None else f"{(rate - rate_before) * 100:+.1f} pp",
            "normal", "Completed ÷ (completed + failed); events still in progress are left out."),
        Kpi("Failed", f"{int(current.get('failed') or 0):,}",
            _count_delta(current.get("failed"), previous.get("failed")), "inverse",
            "Events whose processing failed and has not succeeded since."),
        Kpi("Stuck", f"{int(current.get('stuck') or 0):,}",
            _count_delta(current.get("stuck"), previous.get("stuck")), "inverse",
            f"Events still 'processing' after more than {stuck_minutes} min (MONITOR_STUCK_MINUTES)."),
        Kpi("p95 duration", format_duration(None if p95 is None else p95 / 1000),
            None if p95 is None or p95_before is None else f"{p95 - p95_before:+,.0f} ms", "inverse",
            "95% of completed events were processed at least this fast."),
    ])


def silence_warning(last_event_at: datetime | None, median_gap_seconds: float | None,
                    now: datetime) -> str | None:
    """A warning when no event arrived for much longer than usual, else None."""
    if last_event_at is None:
        return None
    silent_for = now - last_event_at
    gap = _number(median_gap_seconds)
    usual = timedelta(seconds=gap) if gap is not None else None
    threshold = max(SILENCE_FLOOR, SILENCE_FACTOR * usual) if usual is not None else SILENCE_FLOOR
    if silent_for <= threshold:
        return None
    usual_text = f"; events usually arrive every {format_duration(gap)}" if usual is not None else ""
    return (f"No webhook event for {format_duration(silent_for.total_seconds())}{usual_text}. "
            "Check that the endpoint is reachable and still enabled in Stripe "
            "(Developers → Webhooks), and that the app's handler records events.")


def missed_events_alert(summary: dict, money: list[dict], now) -> str | None:
    """The Overview's line about events Stripe sent that never reached the app, money at
    risk first; None when none is open."""
    count = int(_number(summary.get("open_events")) or 0)
    if not count:
        return None
    amounts = [format_money(row.get("amount"), row.get("currency")) for row in money]
    amounts = [a for a in amounts if a]
    parts = [f"**{count:,} event{'s' if count != 1 else ''} Stripe sent never reached the app**"]
    if amounts:
        parts.append(f"money at risk: {', '.join(amounts)}")
    oldest = summary.get("oldest_at")
    if oldest is not None and not _is_missing_time(oldest):
        parts.append(f"oldest {format_duration(max((now - oldest).total_seconds(), 0))} ago")
    forgotten = summary.get("first_forgotten_at")
    text = "; ".join(parts) + "."
    if forgotten is not None and not _is_missing_time(forgotten):
        text += f" Stripe forgets the first of them on {forgotten:%Y-%m-%d %H:%M} UTC."
    return text + " Replay them with `python -m jobs sweep --replay`."


def _is_missing_time(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def plural(count: Any, word: str, words: str | None = None) -> str:
    """'1 event', '2 events', '1,234 events' (``words`` for an irregular plural)."""
    number = int(_number(count) or 0)
    return f"{number:,} {word if number == 1 else (words or word + 's')}"
