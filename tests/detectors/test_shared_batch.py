"""The login detectors share one batch's successful logins (filtered once): running them one after
another on the same batch gives what each gives on a batch of its own, and the batch is unchanged."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from detectors import DETECTORS, Batch
from detectors.login_history import successful, successful_in
from tests.detectors.conformance_data import START, make_data

LOGIN_DETECTORS = ("login_risk", "new_location", "new_device", "new_subnet", "new_asn", "impossible_travel")
NOW = START + timedelta(days=40)


def _answers(det_name: str, batch: Batch) -> tuple[list[tuple[str, float, str]], dict[str, object]]:
    res = DETECTORS[det_name]().scan(batch, {}, now=NOW)
    return [(f.finding_id, f.score, repr(f.evidence)) for f in res.findings], res.profiles


def test_one_shared_batch_equals_a_batch_each() -> None:
    data = make_data(3)
    shared = Batch.from_frames(data)
    before = shared.frames["logins"].copy()
    together = {name: _answers(name, shared) for name in LOGIN_DETECTORS}
    alone = {name: _answers(name, Batch.from_frames(data)) for name in LOGIN_DETECTORS}
    assert together == alone
    assert any(findings for findings, _ in together.values())  # the data has something to find
    pd.testing.assert_frame_equal(shared.frames["logins"], before)


def test_the_filter_is_computed_once_and_follows_a_new_frame() -> None:
    batch = Batch.from_frames(make_data(4))
    df = batch.frames["logins"]
    first = successful_in(batch, df)
    assert successful_in(batch, df) is first
    pd.testing.assert_frame_equal(first, successful(df))
    other = df.iloc[: len(df) // 2]
    assert len(successful_in(batch, other)) == len(successful(other)) < len(first)
