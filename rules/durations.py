"""Durations in rule files: ``90s``, ``30m``, ``1h``, ``2d``, ``1w``, or combinations like ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RE = re.compile(r"^(?:(\d+)([smhdw]))+$")
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"a duration like '30m', '1h' or '2d' is expected, got {value!r}")
    if isinstance(value, int):
        raise ValueError(f"a duration needs a unit: write '{value}s', '{value}m' or '{value}h'")
    text = value.strip().lower()
    if not _RE.match(text):
        raise ValueError(f"{value!r} is not a duration; use a number and a unit s, m, h, d or w, like '30m'")
    seconds = sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    s = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0 and s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
