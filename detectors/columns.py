"""Column helpers that keep detectors free of per-row Python.

String work (strip, upper-case, parse) runs once per *distinct* value and is mapped back through
integer codes (``pd.factorize``); groups are integer codes, and "per account" arithmetic is
``np.bincount`` / sorted runs rather than Python loops.  Timestamps are int64 nanoseconds (UTC)
inside a detector; :func:`isoformat_utc` renders exactly what ``pd.Timestamp.isoformat()`` gives,
so profiles keep their stored format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from detectors.sequence import iso_to_ns, to_ns
from detectors.sorting import lexsort, stable_argsort

__all__ = [
    "NAT",
    "as_str",
    "cumcount",
    "distinct_map",
    "group_min",
    "iso_to_ns",
    "isoformat_utc",
    "known_mask",
    "last_in_group",
    "previous_in_group",
    "to_ns",
]

NAT = np.iinfo(np.int64).min  # "no time" in int64 nanosecond arrays
_NS = 1_000_000_000


def isoformat_utc(ns: np.ndarray) -> list[str]:
    """``pd.Timestamp(v, tz="UTC").isoformat()`` for every value, without a Timestamp per value:
    seconds, then ``.ffffff`` or ``.fffffffff`` only when there is a fraction, then ``+00:00``."""
    arr = np.asarray(ns, dtype=np.int64)
    if arr.size == 0:
        return []
    sec = arr // _NS
    frac = arr - sec * _NS
    whole = frac == 0
    micro = ~whole & (frac % 1000 == 0)
    if micro.all():
        text = np.datetime_as_string((arr // 1000).astype("datetime64[us]"), unit="us").tolist()
        return [t + "+00:00" for t in text]
    out = [t + "+00:00" for t in np.datetime_as_string(sec.astype("datetime64[s]"), unit="s").tolist()]
    us = np.flatnonzero(micro)
    if len(us):
        text = np.datetime_as_string((arr[us] // 1000).astype("datetime64[us]"), unit="us").tolist()
        for i, v in zip(us.tolist(), text, strict=True):
            out[i] = v + "+00:00"
    for i in np.flatnonzero(~whole & ~micro).tolist():
        out[i] = out[i][:19] + f".{int(frac[i]):09d}+00:00"
    return out


def distinct_map(s: pd.Series | np.ndarray, fn: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """``fn`` applied to the distinct non-null values of ``s`` and mapped back (None where null).

    ``fn`` receives a Series of the distinct values and returns one of the same length.
    """
    codes, uniq = pd.factorize(s)
    out = np.full(len(codes), None, dtype=object)
    if len(uniq) == 0:
        return out
    mapped = np.asarray(fn(pd.Series(uniq)).astype(object).to_numpy(), dtype=object)
    has = codes >= 0
    out[has] = mapped[codes[has]]
    return out


def known_mask(s: pd.Series) -> np.ndarray:
    """Not null and not blank (``str(v).strip() != ""``), judged once per distinct value."""
    codes, uniq = pd.factorize(s)
    if len(uniq) == 0:
        return np.zeros(len(codes), dtype=bool)
    ok = (pd.Series(uniq).astype(str).str.strip().str.len() > 0).to_numpy(dtype=bool)
    return (codes >= 0) & ok[np.maximum(codes, 0)]


def as_str(values: np.ndarray | pd.Series) -> np.ndarray:
    """``str(v)`` of every value as an object array, once per distinct value (None stays None)."""
    return distinct_map(values, lambda u: u.map(str))


def cumcount(code: np.ndarray) -> np.ndarray:
    """How many earlier rows (in array order) share each row's code."""
    n = len(code)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = stable_argsort(code)
    sc = code[order]
    start = np.ones(n, dtype=bool)
    start[1:] = sc[1:] != sc[:-1]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    out = np.empty(n, dtype=np.int64)
    out[order] = idx - first
    return out


def previous_in_group(key: np.ndarray) -> np.ndarray:
    """For each row, the position of the previous row (in array order) with the same key, or -1."""
    n = len(key)
    out = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return out
    order = stable_argsort(key)
    same = np.flatnonzero(key[order][1:] == key[order][:-1]) + 1
    out[order[same]] = order[same - 1]
    return out


def last_in_group(key: np.ndarray, *sort_keys: np.ndarray) -> np.ndarray:
    """Positions of the last row of each key when rows are ordered by ``sort_keys`` (most
    significant first), ties kept in array order."""
    n = len(key)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = lexsort((np.arange(n), *reversed(sort_keys), key))
    sk = key[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = sk[:-1] != sk[1:]
    return order[last]


def group_min(code: np.ndarray, values: np.ndarray, n_groups: int, initial: Any) -> np.ndarray:
    """Per-group minimum (``initial`` for empty groups)."""
    out = np.full(n_groups, initial, dtype=np.asarray(values).dtype)
    np.minimum.at(out, code, values)
    return out
