"""How evidence writes times: ISO 8601 in UTC with a ``Z``."""

from __future__ import annotations

import datetime as dt


def iso_utc(value: dt.datetime | dt.date | None) -> str | None:
    """``2026-12-01T10:00:00Z`` for a datetime, ``2026-12-01`` for a date, None for None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()
