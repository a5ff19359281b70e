"""Withdrawal to an address never used by the account within the window."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from detectors import Batch
from detectors.new_address import NewAddress

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def wd(eid: str, acct: str, days: float, address: str | None, amount: float = 500.0) -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(days=days),
        "kind": "withdrawal",
        "asset": "USDT",
        "amount": amount,
        "address": address,
        "network": "ETH",
    }


def run(rows: list[dict[str, Any]], det: NewAddress | None = None, profiles: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    return (det or NewAddress()).scan(
        Batch.from_frames({"transactions": pd.DataFrame(rows)}), profiles or {}, now=T0
    )


def test_first_then_new_then_known() -> None:
    res = run([wd("1", "a", 0, "0xAAA"), wd("2", "a", 1, "0xaaa"), wd("3", "a", 2, "0xBBB")])
    assert [(f.event_ids, f.kind) for f in res.findings] == [
        (("1",), "first_address"),
        (("3",), "new_address"),
    ]
    ev = res.findings[1].evidence
    assert ev["address"] == "0xbbb" and ev["prior_withdrawals"] == 2 and ev["last_used"] is None


def test_address_forgotten_after_the_window() -> None:
    det = NewAddress(window_days=30)
    res = run([wd("1", "a", 0, "bc1qxyz"), wd("2", "a", 31, "bc1qxyz")], det)
    assert [f.kind for f in res.findings] == ["first_address", "new_address"]
    assert res.findings[1].evidence["last_used"] == "2024-03-01T00:00:00.000Z"


def test_addresses_are_per_account() -> None:
    res = run([wd("1", "a", 0, "0xAAA"), wd("2", "a", 1, "0xCCC"), wd("3", "b", 2, "0xCCC")])
    assert [(f.account_id, f.kind) for f in res.findings] == [
        ("a", "first_address"),
        ("a", "new_address"),
        ("b", "first_address"),
    ]


def test_profile_carries_known_addresses_and_is_bounded() -> None:
    det = NewAddress(max_addresses=2)
    first = run([wd("1", "a", 0, "x1"), wd("2", "a", 1, "x2"), wd("3", "a", 2, "x3")], det)
    prof = json.loads(json.dumps(first.profiles))
    assert prof["a"]["n"] == 3 and sorted(prof["a"]["a"]) == ["x2", "x3"]  # x1, least recent, forgotten
    second = run([wd("4", "a", 3, "x3"), wd("5", "a", 4, "x1")], det, prof)
    assert [(f.event_ids, f.kind) for f in second.findings] == [(("5",), "new_address")]


def test_min_usd_ignores_dust_but_remembers_the_address() -> None:
    res = run([wd("1", "a", 0, "x1", amount=5), wd("2", "a", 1, "x1", amount=5_000)], NewAddress(min_usd=100))
    assert res.findings == []


def test_missing_address_column_or_value_is_a_counted_skip() -> None:
    rows = [wd("1", "a", 0, None), wd("2", "a", 1, "x")]
    res = run(rows)
    assert [(s.reason, s.rows) for s in res.skips] == [("withdrawal without an address", 1)]
    no_col = pd.DataFrame(rows).drop(columns=["address"])
    res = NewAddress().scan(Batch.from_frames({"transactions": no_col}), {}, now=T0)
    assert res.findings == [] and "column 'address' absent" in res.skips[0].reason


def test_unpriced_withdrawal_is_judged_even_with_min_usd() -> None:
    row = wd("1", "a", 0, "x1", amount=2.0) | {"asset": "ETH"}  # no amount_usd: value unknown
    [f] = run([row], NewAddress(min_usd=100)).findings
    assert f.evidence["amount_usd"] is None
