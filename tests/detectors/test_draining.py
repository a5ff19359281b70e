"""Draining velocity: count, sum and share of recent deposits leaving within a window."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from detectors import Batch, ParameterError
from detectors.draining import Draining

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def tx(eid: str, hours: float, kind: str, amount: float, acct: str = "a") -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(hours=hours),
        "kind": kind,
        "asset": "USDT",
        "amount": amount,
    }


def run(rows, det=None, profiles=None):  # type: ignore[no-untyped-def]
    return (det or Draining()).scan(
        Batch.from_frames({"transactions": pd.DataFrame(rows)}), profiles or {}, now=T0
    )


def test_count_fires_once_per_burst_and_rearms() -> None:
    rows = [tx(f"w{i}", i, "withdrawal", 100) for i in range(7)]  # 5th, 6th, 7th are all >= 5
    rows += [tx(f"v{i}", 100 + i, "withdrawal", 100) for i in range(5)]  # a second burst, 3 days later
    res = run(rows)
    assert [(f.event_ids[-1], f.kind) for f in res.findings] == [("w4", "count"), ("v4", "count")]
    assert res.findings[0].event_ids == ("w0", "w1", "w2", "w3", "w4")
    assert res.findings[0].evidence["outflows_in_window"] == 5


def test_share_of_recent_deposits() -> None:
    rows = [
        tx("d1", 0, "deposit", 10_000),
        tx("d0", -24 * 40, "deposit", 90_000),  # d0: older than 30 days
        tx("w1", 10, "withdrawal", 5_000),
        tx("w2", 11, "transfer_out", 4_000),
    ]
    [f] = run(rows).findings
    assert f.kind == "share" and f.event_ids == ("w1", "w2")
    assert f.evidence["share_of_inflows"] == 0.9 and f.evidence["inflow_usd"] == 10_000


def test_sum_threshold_and_no_share_without_deposits() -> None:
    [f] = run([tx("w1", 0, "withdrawal", 30_000), tx("w2", 5, "withdrawal", 25_000)]).findings
    assert f.kind == "sum" and f.evidence["share_of_inflows"] is None and f.evidence["outflow_usd"] == 55_000


def test_small_share_is_ignored() -> None:
    assert run([tx("d", 0, "deposit", 1_000), tx("w", 1, "withdrawal", 999)]).findings == []


def test_state_survives_batches_without_refiring() -> None:
    rows = [tx(f"w{i}", i, "withdrawal", 100) for i in range(7)]
    first = run(rows[:5])
    prof = json.loads(json.dumps(first.profiles))
    assert prof["a"]["on"] == ["count"]
    assert run(rows[5:], profiles=prof).findings == []  # still the same burst


def test_parameters() -> None:
    with pytest.raises(
        ParameterError, match="'max_count' parameter of Draining must not exceed 'max_events'"
    ):
        Draining(max_count=50, max_events=10)
