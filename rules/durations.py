"""Durations in rule files: ``90s``, ``30m``, ``1h``, ``2d``, ``1w``, or combinations like ``1h30m``.

Why a unit is mandatory: ``expires: 30`` reads as minutes to one person and seconds to another;
a rule file must say which.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RE = re.compile(r"^(?:(\d+)([smhdw]))+$")
_PART = re.compile(r"(\d+)([smhdw])")
_WORDS = {
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "day": "d",
    "days": "d",
    "week": "w",
    "weeks": "w",
}
_NUM_WORD = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse a rule-file duration; the ``ValueError`` message is shown to staff as is."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration like '30m', '1h' or '2d', got {value!r}")
    if isinstance(value, int | float):
        n = int(value) if float(value).is_integer() else value
        raise ValueError(f"a duration needs a unit: write '{n}s', '{n}m' or '{n}h' instead of {value!r}")
    text = value.strip().lower()
    if text.startswith("-"):
        raise ValueError(f"a duration must be positive, got {value!r}")
    if not _RE.match(text):
        m = _NUM_WORD.match(text)
        if m and m.group(2).lower() in _WORDS:
            hint = f"{m.group(1)}{_WORDS[m.group(2).lower()]}"
            raise ValueError(f"{value!r} is not a duration; write '{hint}'")
        if m and m.group(2).lower() in ("y", "yr", "year", "years", "mo", "month", "months"):
            raise ValueError(f"{value!r} is not a duration; months and years vary, use days ('30d')")
        raise ValueError(f"{value!r} is not a duration; use a number and a unit s, m, h, d or w, like '30m'")
    seconds = sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    """The shortest exact spelling: ``1h30m`` rather than ``5400s``."""
    s = int(td.total_seconds())
    if s <= 0:
        return f"{s}s"
    if s % 604800 == 0:
        return f"{s // 604800}w"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out.append(f"{s // size}{unit}")
            s %= size
    return "".join(out)
