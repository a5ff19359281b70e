"""One conformance suite over every registered detector (scikit-learn's ``parametrize_with_checks``).

Properties, each checked with Hypothesis on generated data that exercises every detector:

* empty input gives no findings;
* row order does not matter;
* an unrelated account never changes another account's findings (detectors that declare
  ``cross_account = True`` -- credential stuffing -- are exempt from this one only);
* shifting all timestamps shifts the findings and changes nothing else;
* a missing optional column never crashes, and if it changes the findings the detector says why
  with a ``Skip`` naming the column;
* scanning in ten batches, carrying JSON round-tripped profiles and loading only the profiles of
  the batch's accounts, gives the same findings as one scan; profiles stay bounded.

``test_every_detector_fires`` keeps the suite honest: each detector must report something on the
generated data, so no property can pass because a detector never looked.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from detectors import DETECTORS, Batch, Detector, DetectorResult
from detectors.contract import TABLES
from tests.detectors.conformance_data import (
    DAYS,
    PROFILE_LIMIT_BYTES,
    START,
    TS_COLUMNS,
    make_data,
)


def scan(
    det: Detector,
    frames: Mapping[str, pd.DataFrame],
    profiles: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> DetectorResult:
    batch = Batch.from_frames(frames)
    return det.scan(batch, profiles or {}, now=now or START + timedelta(days=DAYS + 1))


def summary(result: DetectorResult, *, shift: timedelta = timedelta(0)) -> dict[str, tuple[Any, ...]]:
    return {
        f.finding_id: (f.detector, f.account_id, f.kind, f.ts - shift, f.event_ids, round(f.score, 6))
        for f in result.findings
    }


def full(result: DetectorResult) -> list[tuple[Any, ...]]:
    return sorted(
        (f.finding_id, f.kind, f.ts, f.event_ids, f.score, json.dumps(f.evidence, sort_keys=True))
        for f in result.findings
    )


def empty_frames() -> dict[str, pd.DataFrame]:
    return {t: pd.DataFrame(columns=list(TABLES[t].names)) for t in TABLES}


def needed_profiles(det: Detector, batch: Batch, profiles: Mapping[str, Any]) -> dict[str, Any]:
    """What the store would load: the batch's accounts, plus the keys the detector asks for."""
    keys = set(batch.accounts())
    extra = getattr(det, "profile_keys", None)
    if callable(extra):
        keys |= set(extra(batch))
    return {k: v for k, v in profiles.items() if k in keys}


def split_scan(
    det: Detector, frames: Mapping[str, pd.DataFrame], fractions: list[float]
) -> dict[str, tuple[Any, ...]]:
    stamps = np.concatenate(
        [
            pd.to_datetime(frames[t]["ts"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
            for t in TS_COLUMNS
            if t != "accounts" and len(frames[t])
        ]
    )
    cuts = [None, *sorted(np.quantile(stamps, fractions).astype(np.int64).tolist()), None]
    profiles: dict[str, Any] = {}
    found: dict[str, tuple[Any, ...]] = {}
    for lo, hi in itertools.pairwise(cuts):
        part = {"accounts": frames["accounts"]}
        for t in TS_COLUMNS:
            if t == "accounts":
                continue
            ns = pd.to_datetime(frames[t]["ts"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
            keep = np.ones(len(ns), dtype=bool)
            if lo is not None:
                keep &= ns >= lo
            if hi is not None:
                keep &= ns < hi
            part[t] = frames[t][keep]
        batch = Batch.from_frames(part)
        res = det.scan(batch, needed_profiles(det, batch, profiles), now=START + timedelta(days=DAYS + 1))
        text = json.dumps(res.profiles, allow_nan=False)  # strict JSON, as the store keeps it
        for key, prof in res.profiles.items():
            size = len(json.dumps(prof))
            assert size < PROFILE_LIMIT_BYTES, f"{det.name}: profile of {key} is {size} bytes"
        profiles.update(json.loads(text))
        found.update(summary(res))
    return found


# --------------------------------------------------------------------------------------------
# detector instances: defaults, except the learned detector, which needs a fitted model
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detectors.isolation import fit_model, save_model

    frames = make_data(1234, n_accounts=30)
    model = fit_model(Batch.from_frames(frames), contamination=0.03, n_estimators=100, seed=0)
    path = tmp_path_factory.mktemp("model") / "isolation.skops"
    save_model(model, path, fitted_at=START)
    return path


@pytest.fixture(scope="module")
def make(model_path: Path) -> Any:
    def build(name: str) -> Detector:
        cls = DETECTORS[name]
        det = cls()
        if name == "isolation":  # the model comes from the operator's settings, attached after load
            import hashlib

            from detectors.isolation import load_model

            det.attach(load_model(model_path, hashlib.sha256(model_path.read_bytes()).hexdigest()))
        return det

    return build


NAMES = sorted(DETECTORS)
ACCOUNT_LOCAL = [n for n in NAMES if not getattr(DETECTORS[n], "cross_account", False)]
SEEDS = st.integers(min_value=0, max_value=2**16)
# a few examples per property keep the suite at about a minute; VIGIL_CONFORMANCE_EXAMPLES=50 digs deeper.
# No shrinking: the input is a seed, and a smaller seed is not a simpler data set.
EXAMPLES = int(os.environ.get("VIGIL_CONFORMANCE_EXAMPLES", "3"))
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ONCE = settings(FAST, max_examples=max(1, EXAMPLES // 3))


@pytest.mark.parametrize("name", NAMES)
def test_every_detector_fires(make: Any, name: str) -> None:
    det = make(name)
    res = scan(det, make_data(7))
    assert res.findings, f"{name} reported nothing on the generated data: the suite would prove nothing"
    for f in res.findings:
        assert f.detector == name and f.event_ids and 0.0 <= f.score <= 1.0
        json.dumps(f.to_context(), allow_nan=False)


@pytest.mark.parametrize("name", NAMES)
def test_empty_input_gives_no_findings(make: Any, name: str) -> None:
    det = make(name)
    for batch in (
        Batch(),
        Batch.from_frames(empty_frames()),
        Batch.from_frames({"accounts": make_data(3)["accounts"]}),
    ):
        res = det.scan(batch, {}, now=START)
        assert res.findings == [] and res.profiles == {}


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(seed=SEEDS, order=SEEDS)
def test_row_order_does_not_matter(make: Any, name: str, seed: int, order: int) -> None:
    det = make(name)
    frames = make_data(seed)
    rng = np.random.default_rng(order)
    shuffled = {t: df.iloc[rng.permutation(len(df))].reset_index(drop=True) for t, df in frames.items()}
    assert full(scan(det, shuffled)) == full(scan(det, frames))


@pytest.mark.parametrize("name", ACCOUNT_LOCAL)  # cross_account detectors are the documented exemption
@FAST
@given(seed=SEEDS, other=SEEDS)
def test_unrelated_account_changes_nothing(make: Any, name: str, seed: int, other: int) -> None:
    det = make(name)
    frames = make_data(seed)
    stranger = make_data(other, prefix="zz")
    keep = {"zzacct00", "zzacct03"}  # the takeover victim and the trader of the other data set
    mixed = {
        t: pd.concat([df, stranger[t][stranger[t]["account_id"].isin(keep)]], ignore_index=True)
        for t, df in frames.items()
    }
    alone = summary(scan(det, frames))
    together = {k: v for k, v in summary(scan(det, mixed)).items() if not v[1].startswith("zz")}
    assert together == alone


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(
    seed=SEEDS,
    seconds=st.integers(min_value=-400 * 86_400, max_value=400 * 86_400),
    millis=st.integers(min_value=0, max_value=999),
)
def test_time_shift_shifts_findings(make: Any, name: str, seed: int, seconds: int, millis: int) -> None:
    det = make(name)
    frames = make_data(seed)
    delta = timedelta(seconds=seconds, milliseconds=millis)
    shifted = {
        t: df.assign(**{TS_COLUMNS[t]: pd.to_datetime(df[TS_COLUMNS[t]], utc=True) + delta})
        for t, df in frames.items()
    }
    base = summary(scan(det, frames))
    moved = summary(scan(det, shifted, now=START + timedelta(days=DAYS + 1) + delta), shift=delta)
    assert moved.keys() == base.keys()
    for k, v in base.items():
        assert moved[k][:5] == v[:5]
        assert moved[k][5] == pytest.approx(v[5], abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
@ONCE
@given(seed=SEEDS)
def test_missing_optional_column_skips_with_reason(make: Any, name: str, seed: int) -> None:
    det = make(name)
    frames = make_data(seed)
    base = set(summary(scan(det, frames)))
    for table in (det.table, *det.extra_tables):
        for col in TABLES[table].optional:
            dropped = {**frames, table: frames[table].drop(columns=[col])}
            res = scan(det, dropped)  # must not raise
            if set(summary(res)) != base:
                reasons = [s.reason for s in res.skips]
                assert any(col in r for r in reasons), (
                    f"{name}: dropping {table}.{col} changed the findings without a Skip naming it: {reasons}"
                )


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(seed=SEEDS, fractions=st.lists(st.floats(min_value=0.02, max_value=0.98), min_size=9, max_size=9))
def test_ten_batches_equal_one_scan(make: Any, name: str, seed: int, fractions: list[float]) -> None:
    det = make(name)
    frames = make_data(seed)
    assert split_scan(det, frames, fractions) == summary(scan(det, frames))
