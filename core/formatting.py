"""How the project writes numbers for people: durations, rates and counts, shared by the
dashboard's tiles, the alerts, ``status`` and the mailed health report (money is
``core.checkout.format_money``, which reads its amount with :func:`number` too). Plain
functions, no pandas: a missing value (None, NaN) is written as a dash."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a number."""
    if value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def format_duration(seconds: float | None) -> str:
    """'850 ms', '12.3 s', '7 min', '3 h 5 min', '2 d 4 h'; '–' for no value."""
    seconds = number(seconds)
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_percent(rate: float | None) -> str:
    """0.987 -> '98.7%'; '–' for no value."""
    rate = number(rate)
    return "–" if rate is None else f"{rate * 100:.1f}%"


def counted(count: int, word: str) -> str:
    """'1 event', '1,204 events': a count and its word, plural by adding an s."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
