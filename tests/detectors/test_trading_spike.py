"""Frequent trading against the account's own baseline."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from detectors import Batch
from detectors.trading_spike import TradingSpike

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def trade(eid: str, minutes: float, acct: str = "a") -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(minutes=minutes),
        "kind": "trade",
        "asset": "USDT",
        "amount": 100.0,
        "symbol": "BTCUSDT",
        "side": "buy",
    }


def daily(acct: str, days: int, per_day: int) -> list[dict[str, Any]]:
    return [
        trade(f"{acct}d{d}n{k}", d * 1440 + 600 + 60 * k, acct) for d in range(days) for k in range(per_day)
    ]


def burst(acct: str, day: int, n: int, every_s: float = 60) -> list[dict[str, Any]]:
    return [trade(f"{acct}b{k:03d}", day * 1440 + 900 + k * every_s / 60, acct) for k in range(n)]


def run(rows, det=None, profiles=None):  # type: ignore[no-untyped-def]
    return (det or TradingSpike()).scan(
        Batch.from_frames({"transactions": pd.DataFrame(rows)}), profiles or {}, now=T0
    )


def test_spike_reported_once_at_the_crossing_trade() -> None:
    res = run(daily("a", 10, 3) + burst("a", 10, 45))
    [f] = res.findings
    assert f.kind == "spike" and f.event_ids[-1] == "ab029"  # the 30th trade of the hour
    ev = f.evidence
    assert ev["trades_in_window"] == 30 and ev["threshold"] == 30
    # 30 earlier trades over the history before the window (first trade day 0 10:00, window opens
    # day 10 15:29 - 60 min): 30 x 60 / 14,669 minutes per hour
    assert ev["baseline_per_window"] == round(30 * 60 / 14_669, 3)
    assert ev["multiple_of_baseline"] == round(30 / (30 * 60 / 14_669), 1)
    assert len(f.event_ids) == 30


def test_busy_trader_needs_a_bigger_burst() -> None:
    # 240 trades a day for 5 days, then quiet until day 5 15:00: 1,200 trades over the history
    # before the window, about 8.9 an hour, so the threshold is about 5 x 8.9 = 44.5 an hour
    busy = [trade(f"d{d}n{k}", d * 1440 + k * 6, "a") for d in range(5) for k in range(240)]
    quiet = run(busy + burst("a", 5, 40), TradingSpike(max_events=2000))
    assert quiet.findings == []
    loud = run(busy + burst("a", 5, 60, every_s=30), TradingSpike(max_events=2000))
    [f] = loud.findings
    span_min = 5 * 1440 + 900 + 44 * 0.5 - 60  # the 45th trade of the burst crosses
    assert f.evidence["threshold"] == round(5 * 1_200 * 60 / span_min, 3)
    assert f.evidence["trades_in_window"] == 45


def test_learning_period() -> None:
    assert run(daily("a", 2, 3) + burst("a", 2, 45)).findings == []  # first trade only 2 days old
    assert len(run(daily("a", 2, 3) + burst("a", 2, 45), TradingSpike(learning_days=1)).findings) == 1


def test_profile_continues_the_baseline_and_the_spike_state() -> None:
    rows = daily("a", 10, 3) + burst("a", 10, 45)
    one = run(rows)
    first = run(rows[: 30 + 35])
    prof = json.loads(json.dumps(first.profiles))
    assert prof["a"]["first"] == "2024-03-01T10:00:00.000Z" and prof["a"]["s"] is True
    assert [f.finding_id for f in first.findings] == [f.finding_id for f in one.findings]
    assert run(rows[65:], profiles=prof).findings == []  # the same burst does not fire again
    assert len(prof["a"]["t"]) <= 499
