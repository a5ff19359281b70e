"""High leverage: margin tiers with hysteresis, leverage threshold, sudden rise."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from detectors import Batch, ParameterError
from detectors.high_leverage import HighLeverage

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def snaps(
    path: list[tuple[float, float | None]], symbol: str = "BTCUSDT", acct: str = "a", prefix: str = "p"
) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}{i:02d}",
            "account_id": acct,
            "ts": T0 + pd.Timedelta(hours=i),
            "symbol": symbol,
            "leverage": lev,
            "margin_ratio": mr,
        }
        for i, (lev, mr) in enumerate(path)
    ]


def run(rows, det=None, profiles=None):  # type: ignore[no-untyped-def]
    return (det or HighLeverage()).scan(
        Batch.from_frames({"positions": pd.DataFrame(rows)}), profiles or {}, now=T0
    )


def kinds(res) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(f.event_ids[0], f.kind) for f in res.findings]


def test_oscillating_around_a_tier_fires_once() -> None:
    path = [(5, m) for m in (0.5, 0.71, 0.69, 0.72, 0.68, 0.705, 0.74)]
    assert kinds(run(snaps(path))) == [("p01", "margin_tier_1")]


def test_falling_below_the_hysteresis_band_rearms() -> None:
    path = [(5, m) for m in (0.71, 0.64, 0.72)]
    assert kinds(run(snaps(path))) == [("p00", "margin_tier_1"), ("p02", "margin_tier_1")]


def test_tier_climb_and_jump_report_the_tier_reached() -> None:
    res = run(snaps([(5, 0.5), (5, 0.81), (5, 0.95)]))
    assert kinds(res) == [("p01", "margin_tier_2"), ("p02", "margin_tier_3")]
    ev = res.findings[1].evidence
    assert ev["tier_threshold"] == 0.9 and ev["previous_tier"] == 2 and ev["distance_to_liquidation"] == 0.05


def test_missing_margin_ratio_holds_the_state() -> None:
    assert kinds(run(snaps([(5, 0.75), (5, None), (5, 0.75)]))) == [("p00", "margin_tier_1")]


def test_high_leverage_with_hysteresis() -> None:
    res = run(snaps([(60, 0.1), (45, 0.1), (55, 0.1), (30, 0.1), (50, 0.1)]), HighLeverage(rise_factor=100))
    assert kinds(res) == [("p00", "leverage"), ("p04", "leverage")]


def test_sudden_rise_against_the_lowest_leverage_of_the_window() -> None:
    res = run(snaps([(5, 0.1), (8, 0.1), (12, 0.1), (16, 0.1), (20, 0.1)]))
    [f] = res.findings
    assert (f.event_ids[0], f.kind) == ("p03", "leverage_rise")  # 16 >= 3 x 5 and >= 10
    assert f.evidence["rise_from_leverage"] == 5.0
    # spread over more than rise_hours it is not sudden
    slow = run(snaps([(5, 0.1), (8, 0.1), (12, 0.1), (16, 0.1)]), HighLeverage(rise_hours=2))
    assert slow.findings == []


def test_symbols_are_independent_and_state_crosses_batches() -> None:
    rows = snaps([(5, 0.75), (5, 0.6), (5, 0.75)], "BTCUSDT") + snaps([(5, 0.85)], "ETHUSDT", prefix="e")
    one = run(rows)
    assert sorted(kinds(one)) == [
        ("e00", "margin_tier_2"),
        ("p00", "margin_tier_1"),
        ("p02", "margin_tier_1"),
    ]
    first = run(rows[:2])
    prof = json.loads(json.dumps(first.profiles))
    assert prof["a"]["s"]["BTCUSDT"]["tier"] == 0 and len(prof["a"]["s"]["BTCUSDT"]["r"]) == 2
    second = run(rows[2:], profiles=prof)
    assert sorted(f.finding_id for f in first.findings + second.findings) == sorted(
        f.finding_id for f in one.findings
    )


def test_profile_bounds() -> None:
    rows = [r for s in range(5) for r in snaps([(5, 0.2)] * 40, f"S{s}", prefix=f"s{s}-")]
    res = run(rows, HighLeverage(max_snapshots=8, max_symbols=3))
    syms = res.profiles["a"]["s"]
    assert len(syms) == 3 and all(len(v["r"]) == 8 for v in syms.values())


def test_margin_tiers_validated() -> None:
    with pytest.raises(ParameterError, match="strictly ascending numbers in \\(0, 1\\)"):
        HighLeverage(margin_tiers=[0.9, 0.8])


# -- issue 13 point 4: margin warnings never missed -----------------------------------------------
def test_first_seen_above_a_tier_warns_at_the_highest_tier() -> None:
    assert kinds(run(snaps([(5, 0.95)]))) == [("p00", "margin_tier_3")]
    assert kinds(run(snaps([(5, 0.83)]))) == [("p00", "margin_tier_2")]


def test_first_seen_in_a_later_batch_for_a_new_symbol_warns() -> None:
    first = run(snaps([(5, 0.5)], symbol="ETHUSDT"))
    profiles = json.loads(json.dumps(first.profiles))
    assert kinds(run(snaps([(5, 0.91)], prefix="q"), profiles=profiles)) == [("q00", "margin_tier_3")]


def test_jump_over_several_tiers_warns_once_at_the_highest_even_across_batches() -> None:
    path = snaps([(5, 0.5), (5, 0.72), (5, 0.96)])
    first = run(path[:2])
    assert kinds(first) == [("p01", "margin_tier_1")]
    second = run(path[2:], profiles=json.loads(json.dumps(first.profiles)))
    assert kinds(second) == [("p02", "margin_tier_3")]
    assert second.findings[0].evidence["previous_tier"] == 1


def test_a_tier_rearms_only_below_the_tier_minus_the_hysteresis() -> None:
    # 0.91 warns at tier 3; 0.86 stays inside the band (0.9 - 0.05): no second warning at 0.93;
    # 0.84 falls below it: 0.92 warns again, at tier 3 only (tiers 1 and 2 never re-armed)
    res = run(snaps([(5, 0.91), (5, 0.86), (5, 0.93), (5, 0.84), (5, 0.92)]))
    assert kinds(res) == [("p00", "margin_tier_3"), ("p04", "margin_tier_3")]
    assert [f.evidence["previous_tier"] for f in res.findings] == [0, 2]


def test_a_liquidated_or_closed_position_rearms_for_the_next_one() -> None:
    # 0.95 warns, 1.0 is the liquidation, the new position at 0.93 warns again without ever
    # being seen below the hysteresis band
    expected = [("p00", "margin_tier_3"), ("p02", "margin_tier_3")]
    assert kinds(run(snaps([(5, 0.95), (5, 1.0), (5, 0.93)]))) == expected
    rows = snaps([(5, 0.92), (5, 0.91), (5, 0.92)])
    for r, notional in zip(rows, (5000.0, 0.0, 4000.0), strict=True):
        r["notional_usd"] = notional
    assert kinds(run(rows)) == expected


def test_the_end_of_a_position_crosses_batches() -> None:
    path = snaps([(5, 0.95), (5, 1.0), (5, 0.93)])
    first = run(path[:2])
    assert kinds(first) == [("p00", "margin_tier_3")]
    assert first.profiles["a"]["s"]["BTCUSDT"]["tier"] == 0
    second = run(path[2:], profiles=json.loads(json.dumps(first.profiles)))
    assert kinds(second) == [("p02", "margin_tier_3")]
