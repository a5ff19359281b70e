"""Same answers after a rewrite: every detector's findings, skips and profiles on seeded data equal
the outputs stored from the implementation before it (``tests/detectors/golden``).

A change that alters answers on purpose (new semantics) regenerates the stored outputs with
``python -m tests.detectors.golden --write`` in the same commit, and says why in the message;
``python -m tests.detectors.golden --compare REF`` lists what changed against revision ``REF``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.detectors.golden import diff, load_golden, run_all


def test_outputs_equal_the_stored_golden_outputs() -> None:
    expected = load_golden()
    assert expected, "no stored golden outputs in tests/detectors/golden"
    actual = json.loads(json.dumps(run_all()))
    lines = diff(expected, actual)
    assert not lines, "detector outputs changed:\n" + "\n".join(lines[:80])


def test_arrow_strings_and_categorical_accounts_give_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch may arrive Arrow-backed (``string[pyarrow]``) with dictionary-encoded account ids
    (issue 11 point 1): the detectors must answer exactly as with object columns."""
    from detectors import Batch

    plain = Batch.from_frames.__func__  # type: ignore[attr-defined]

    def arrowish(cls: type[Batch], frames: Any) -> Batch:
        batch = plain(cls, frames)
        for df in batch.frames.values():
            for col in df.columns:
                if df[col].dtype == object and df[col].map(lambda v: v is None or isinstance(v, str)).all():
                    df[col] = df[col].astype("string[pyarrow]")
            if "account_id" in df:
                df["account_id"] = df["account_id"].astype("category")
        return batch

    monkeypatch.setattr(Batch, "from_frames", classmethod(arrowish))
    expected = {"conformance-1": load_golden()["conformance-1"]}
    actual = json.loads(json.dumps(run_all(sets=["conformance-1"])))
    lines = diff(expected, actual)
    assert not lines, "answers changed with Arrow-backed columns:\n" + "\n".join(lines[:80])
