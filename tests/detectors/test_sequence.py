"""The window arithmetic behind the bounded detectors, checked against brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.sequence import (
    build_seq,
    iso_to_ns,
    keep_recent,
    ns_to_iso,
    range_min,
    to_cents,
    window_start,
    window_sums,
)

events = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(0, 1), st.integers(0, 10_000)),
    min_size=0,
    max_size=60,
)


def _seq(rows: list[tuple[int, int, int, int]]):  # type: ignore[no-untyped-def]
    df = pd.DataFrame(
        {
            "account_id": [f"a{a}" for a, *_ in rows],
            "ts": pd.to_datetime([t * 1_000_000_000 for _, t, *_ in rows], utc=True),
            "event_id": [f"e{i:03d}" for i in range(len(rows))],
        }
    )
    cols = {
        "m": np.array([m for *_, m, _ in rows], dtype=np.int64),
        "v": np.array([v for *_, v in rows], dtype=np.int64),
    }
    return build_seq(df, cols, [], ("m", "v"))


@settings(max_examples=40, deadline=None)
@given(rows=events, horizon=st.integers(1, 30), k=st.integers(1, 8), inclusive=st.booleans())
def test_window_sums_match_brute_force(
    rows: list[tuple[int, int, int, int]], horizon: int, k: int, inclusive: bool
) -> None:
    seq = _seq(rows)
    h = horizon * 1_000_000_000
    member = seq.cols["m"] == 1
    win = window_sums(seq, member, seq.cols["v"], h, k, inclusive=inclusive)
    for i in range(len(seq)):
        prior = [
            j
            for j in range(i + (1 if inclusive else 0))
            if seq.code[j] == seq.code[i] and member[j] and seq.t[j] > seq.t[i] - h
        ]
        last = prior[-k:]
        assert win.count[i] == len(last)
        assert win.total[i] == sum(int(seq.cols["v"][j]) for j in last)


@settings(max_examples=40, deadline=None)
@given(rows=events, horizon=st.integers(1, 30))
def test_window_start_is_first_row_inside(rows: list[tuple[int, int, int, int]], horizon: int) -> None:
    seq = _seq(rows)
    h = horizon * 1_000_000_000
    start = window_start(seq.code, seq.t, h)
    for i in range(len(seq)):
        inside = [j for j in range(len(seq)) if seq.code[j] == seq.code[i] and seq.t[j] > seq.t[i] - h]
        assert start[i] == min(inside)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(0.5, 100), min_size=1, max_size=80), data=st.data())
def test_range_min_matches_slices(values: list[float], data: st.DataObject) -> None:
    arr = np.array(values)
    n = len(arr)
    max_len = data.draw(st.integers(1, n))
    lo = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20)))
    lengths = np.array(data.draw(st.lists(st.integers(0, max_len), min_size=len(lo), max_size=len(lo))))
    hi = np.minimum(lo + lengths, n)
    got = range_min(arr, lo, hi, max_len)
    for q in range(len(lo)):
        if hi[q] > lo[q]:
            assert got[q] == arr[lo[q] : hi[q]].min()
        else:
            assert np.isnan(got[q])


def test_rows_sort_by_account_time_and_event_id_with_history_first() -> None:
    df = pd.DataFrame(
        {
            "account_id": ["b", "a", "a"],
            "event_id": ["x2", "x1", "x0"],
            "ts": pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-02"], utc=True),
        }
    )
    seq = build_seq(df, {"v": np.array([1, 2, 3])}, [("a", "2024-01-01T00:00:00Z", "old", (9,))], ("v",))
    assert list(seq.eid) == ["old", "x0", "x1", "x2"]
    assert list(seq.new) == [False, True, True, True]
    assert list(seq.cols["v"]) == [9, 3, 2, 1]
    assert list(seq.row) == [-1, 2, 1, 0]


def test_keep_recent_keeps_last_items_within_horizon() -> None:
    df = pd.DataFrame(
        {
            "account_id": ["a"] * 5,
            "event_id": [f"e{i}" for i in range(5)],
            "ts": pd.to_datetime([0, 10, 20, 30, 40], unit="s", utc=True),
        }
    )
    seq = build_seq(df, {}, [], ())
    assert list(keep_recent(seq, 25 * 1_000_000_000, 10)) == [False, False, True, True, True]
    assert list(keep_recent(seq, 100 * 1_000_000_000, 2)) == [False, False, False, True, True]


def test_iso_round_trip_and_cents_are_exact() -> None:
    ns = np.array([1_709_251_200_123_456_789, 1_709_251_200_000_000_000], dtype=np.int64)
    assert list(iso_to_ns(ns_to_iso(ns))) == list(ns)
    assert ns_to_iso(ns[1:]) == ["2024-03-01T00:00:00.000Z"]
    assert list(to_cents(np.array([0.1 + 0.2, 19.999, 1e9]))) == [30, 2000, 100_000_000_000]
