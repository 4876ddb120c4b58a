"""Timestamps as gazeback stores them: ISO-8601 UTC text with milliseconds and a ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(ts: float) -> str:
    """Epoch seconds → ``2026-11-27T06:50:24.123Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(time.time())
