"""What people type, turned into content fields: plain functions, unit-tested."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from p2pcrew.tui.viewmodels import DAY, HOUR

_RELATIVE = re.compile(r"^\+?(\d{1,3})\s*([hd])$")


def parse_needed_by(text: str, now_ms: int, tz: tzinfo = UTC) -> int | None:
    """A needed-by time from what a person types: "", "+5h", "3d", "today",
    "tomorrow", "2025-06-01" (end of that day) or "2025-06-01 18:00" (in ``tz``).

    Raises:
        ValueError: with a message saying which forms are understood.
    """
    text = text.strip().lower()
    if not text:
        return None
    match = _RELATIVE.match(text)
    if match:
        unit = HOUR if match.group(2) == "h" else DAY
        return now_ms + int(match.group(1)) * unit
    now = datetime.fromtimestamp(now_ms / 1000, tz)
    if text in ("today", "tomorrow"):
        day = now.date() + timedelta(days=1 if text == "tomorrow" else 0)
        return _ms(datetime(day.year, day.month, day.day, 23, 59, tzinfo=tz))
    for fmt, end_of_day in (("%Y-%m-%d %H:%M", False), ("%Y-%m-%d", True)):
        try:
            parsed = datetime.strptime(text, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
        return _ms(parsed.replace(hour=23, minute=59) if end_of_day else parsed)
    raise ValueError(
        "needed by: use a date (2025-06-01), a date and time (2025-06-01 18:00), "
        "+5h, +3d, today or tomorrow"
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
