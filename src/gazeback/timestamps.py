"""Timestamps as gazeback stores them: ISO-8601 UTC text with milliseconds and a ``Z``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta


def iso(ts: float) -> str:
    """Epoch seconds → ``2026-11-27T06:50:24.123Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(time.time())


DURATION = re.compile(r"(\d+)\s*([mhdw]?)")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "days"}


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``12h``, ``7d``, ``2w`` (a bare number is days) → a timedelta; None when
    ``text`` is not a duration. One parser for every ``--since``."""
    m = DURATION.fullmatch(text.strip().lower())
    if not m:
        return None
    return timedelta(**{DURATION_UNITS[m.group(2)]: int(m.group(1))})
