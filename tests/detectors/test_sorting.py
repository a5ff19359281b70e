"""The radix sorts give exactly numpy's stable permutations (the detectors' answers depend on it)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detectors.sorting import RADIX_FROM, lexsort, stable_argsort

INT64 = np.iinfo(np.int64)


def _keys(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    code = rng.integers(0, 2_500, n)
    t = np.sort(rng.integers(1_700_000_000_000_000_000, 1_702_600_000_000_000_000, n))
    return [
        code,  # accounts: one 16-bit pass
        code * 5_000 + rng.integers(0, 40, n),  # account x value keys: two passes
        t,  # nanoseconds, sorted: the identity
        t[::-1].copy(),  # wide span, unsorted: numpy's own sort
        rng.integers(-5, 5, n),  # negative values
        rng.integers(INT64.min, INT64.max, n, endpoint=True),  # the whole int64 range
        code.astype(np.int32),
        code.astype(np.uint64) * np.uint64(70_000),
        rng.integers(0, 2, n).astype(bool),
        rng.random(n),
        np.full(n, 7),
    ]


@pytest.mark.parametrize("n", [0, 1, 2, RADIX_FROM - 1, RADIX_FROM, 50_000])
def test_stable_argsort_is_numpys_stable_argsort(n: int) -> None:
    rng = np.random.default_rng(n)
    for a in _keys(rng, n):
        assert np.array_equal(stable_argsort(a), np.argsort(a, kind="stable")), a.dtype


@pytest.mark.parametrize("n", [0, 1, RADIX_FROM, 50_000])
def test_lexsort_is_numpys_lexsort(n: int) -> None:
    rng = np.random.default_rng(n + 1)
    code = rng.integers(0, 300, n)
    t = rng.integers(0, 10**15, n)
    flag = rng.integers(0, 2, 2 * n).astype(np.int8)
    for keys in [
        (t, code),
        (rng.integers(0, 9, n), t, code),
        (flag, np.concatenate([t, t - 5]), np.concatenate([code, code])),  # window_start's merge
        (np.arange(n), rng.integers(0, 5, n), t, code * 1_000 + rng.integers(0, 999, n)),
    ]:
        assert np.array_equal(lexsort(keys), np.lexsort(keys))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.integers(RADIX_FROM, RADIX_FROM + 50),
                  elements=st.integers(-(2**40), 2**40) | st.integers(0, 3)))
def test_any_int64_keys(a: np.ndarray) -> None:
    assert np.array_equal(stable_argsort(a), np.argsort(a, kind="stable"))
    assert np.array_equal(lexsort((a, a % 7)), np.lexsort((a, a % 7)))


def test_lexsort_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        lexsort(())
