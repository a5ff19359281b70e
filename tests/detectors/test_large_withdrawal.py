"""Large withdrawal: absolute, relative to the account's own mean, and cold start."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from detectors import Batch, ParameterError
from detectors.large_withdrawal import LargeWithdrawal

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def tx(
    eid: str,
    acct: str,
    hours: float,
    amount: float,
    kind: str = "withdrawal",
    asset: str = "USDT",
    usd: float | None = None,
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(hours=hours),
        "kind": kind,
        "asset": asset,
        "amount": amount,
        "amount_usd": usd,
        "address": "0xabc",
        "network": "ETH",
    }


def run(
    rows: list[dict[str, Any]],
    det: LargeWithdrawal | None = None,
    accounts: pd.DataFrame | None = None,
    profiles: dict[str, Any] | None = None,
):  # type: ignore[no-untyped-def]
    frames = {"transactions": pd.DataFrame(rows)}
    if accounts is not None:
        frames["accounts"] = accounts
    return (det or LargeWithdrawal()).scan(Batch.from_frames(frames), profiles or {}, now=T0)


def test_relative_to_the_accounts_own_mean() -> None:
    rows = [tx(f"w{i}", "a", 24 * i, 200 + 10 * i) for i in range(5)] + [tx("big", "a", 200, 2_500)]
    res = run(rows)
    [f] = res.findings
    assert f.kind == "relative" and f.event_ids == ("big",)
    ev = f.evidence
    assert ev["baseline_mean_usd"] == 220.0 and ev["history_count"] == 5
    assert ev["multiple_of_baseline"] == pytest.approx(2500 / 220, abs=0.01)
    assert ev["reasons"] == ["relative"] and not ev["no_recent_withdrawals"]


def test_relative_check_ignores_small_amounts_and_old_history() -> None:
    det = LargeWithdrawal(history_days=10)
    small = [tx(f"w{i}", "a", 24 * i, 20) for i in range(5)] + [tx("x", "a", 120, 900)]  # 45x but < 1,000 USD
    assert run(small, det).findings == []
    old = [tx(f"w{i}", "a", 24 * i, 200) for i in range(3)] + [
        tx("x", "a", 24 * 30, 3_500)
    ]  # history too old
    [f] = run(old, det).findings
    assert f.kind == "cold_start" and f.evidence["history_count"] == 0 and f.evidence["no_recent_withdrawals"]


def test_absolute_threshold_applies_from_the_first_withdrawal() -> None:
    [f] = run([tx("w", "a", 1, 0.5, asset="BTC", usd=30_000)]).findings
    assert f.kind == "absolute+cold_start"
    assert f.evidence["amount_usd"] == 30_000 and f.evidence["no_recent_withdrawals"] is True
    assert f.score > 0.5


def test_cold_start_new_account_scores_higher_and_says_its_age() -> None:
    accounts = pd.DataFrame(
        {"account_id": ["new", "old"], "created_at": [T0 - pd.Timedelta(days=2), T0 - pd.Timedelta(days=400)]}
    )
    res = run([tx("n", "new", 5, 4_000), tx("o", "old", 5, 4_000)], accounts=accounts)
    by = {f.account_id: f for f in res.findings}
    assert by["new"].kind == by["old"].kind == "cold_start"
    assert by["new"].evidence["new_account"] is True and by["new"].evidence[
        "account_age_days"
    ] == pytest.approx(2.21, abs=0.01)
    assert by["old"].evidence["new_account"] is False
    assert by["new"].score > by["old"].score


def test_below_cold_start_amount_is_quiet() -> None:
    assert run([tx("w", "a", 1, 2_999)]).findings == []


def test_non_usd_without_price_is_skipped_with_reason() -> None:
    res = run([tx("w", "a", 1, 3.0, asset="ETH")])
    assert res.findings == []
    assert [(s.reason, s.rows) for s in res.skips] == [("amount_usd missing for a non-USD asset", 1)]


def test_profile_is_bounded_and_carries_the_baseline_across_batches() -> None:
    det = LargeWithdrawal(max_history=4)
    rows = [tx(f"w{i}", "a", i, 100) for i in range(10)] + [tx("big", "a", 20, 1_000)]
    one = run(rows, det)
    first = run(rows[:10], det)
    prof = json.loads(json.dumps(first.profiles))
    assert len(prof["a"]["w"]) == 4 and prof["a"]["v"] == 1
    second = run(rows[10:], det, profiles=prof)
    assert [f.finding_id for f in second.findings] == [f.finding_id for f in one.findings]
    assert second.findings[0].evidence == one.findings[0].evidence


def test_ties_are_ordered_by_event_id() -> None:
    rows = [tx(f"w{i}", "a", 24 * i, 200) for i in range(3)] + [
        tx("z", "a", 100, 1_500),
        tx("y", "a", 100, 1_500),
    ]
    res = run(rows)
    # "y" sorts before "z": y sees a mean of 200 (7.5x); z also sees y (mean 475, 3.2x: below 5x)
    assert [f.event_ids for f in res.findings] == [("y",)]


def test_parameters_are_validated_with_clear_messages() -> None:
    with pytest.raises(ParameterError, match="'multiple' parameter of LargeWithdrawal must be a number > 1"):
        LargeWithdrawal(multiple=1)
    with pytest.raises(ParameterError, match=r"'cold_start_usd' .* must not exceed 'absolute_usd'"):
        LargeWithdrawal(cold_start_usd=20_000)
    with pytest.raises(ParameterError, match="did you mean 'history_days'"):
        LargeWithdrawal(history_day=3)
