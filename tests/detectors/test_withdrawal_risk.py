"""Withdrawal risk: weak signals multiplied into one score, each factor in the evidence."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from detectors import Batch, ParameterError
from detectors.withdrawal_risk import WithdrawalRisk

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def tx(
    eid: str,
    days: float,
    kind: str = "withdrawal",
    amount: float = 100.0,
    address: str | None = "0xAAA",
    acct: str = "a",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(days=days),
        "kind": kind,
        "asset": "USDT",
        "amount": amount,
        "address": address if kind == "withdrawal" else None,
        **extra,
    }


def login(eid: str, days: float, device: str, asn: int = 4766, acct: str = "a") -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(days=days),
        "success": True,
        "ip": "203.0.113.7",
        "asn": asn,
        "device_id": device,
    }


def sec(eid: str, days: float, kind: str, address: str | None = None, acct: str = "a") -> dict[str, Any]:
    return {"event_id": eid, "account_id": acct, "ts": T0 + pd.Timedelta(days=days), "kind": kind, "address": address}


def history() -> dict[str, list[dict[str, Any]]]:
    """Sixty days of an ordinary account: a deposit a week, 100 USDT out to one address every ten
    days, logins from its own phone and network."""
    txs = [tx(f"d{i}", i * 7.0, "deposit", 1000.0) for i in range(9)]
    txs += [tx(f"w{i}", 1.0 + i * 10, address="0xAAA") for i in range(6)]
    logins = [login(f"l{i}", 0.9 + i * 5, "phone") for i in range(12)]
    return {
        "transactions": txs,
        "logins": logins,
        "security_events": [],
        "accounts": [{"account_id": "a", "created_at": T0 - pd.Timedelta(days=400)}],
    }


def scan(
    frames: dict[str, list[dict[str, Any]]], det: WithdrawalRisk | None = None, profiles: dict[str, Any] | None = None
) -> Any:
    dfs = {k: pd.DataFrame(v) for k, v in frames.items() if v}
    if "security_events" in frames and not frames["security_events"]:
        dfs["security_events"] = pd.DataFrame(columns=["event_id", "account_id", "ts", "kind", "address"])
    return (det or WithdrawalRisk(min_log10_score=-10)).scan(Batch.from_frames(dfs), profiles or {}, now=T0)


def by_event(res: Any) -> dict[str, Any]:
    return {f.event_ids[-1]: f for f in res.findings}


def test_an_ordinary_withdrawal_scores_low_and_a_takeover_high() -> None:
    f = history()
    f["transactions"] += [tx("own", 61.0, amount=100.0, address="0xAAA")]
    f["logins"] += [login("l-own", 60.9, "phone")]
    own = by_event(scan(f))["own"]
    assert own.evidence["log10_score"] < 0
    assert own.evidence["factors"]["address"] == {"factor": 0.5, "text": "address used before"}
    assert own.evidence["factors"]["device"]["text"].startswith("device known for")

    f = history()  # the same account: new device and network, a 2FA reset, most of the balance to a new address
    f["logins"] += [login("l-atk", 61.0, "evil", asn=9009)]
    f["security_events"] += [sec("s1", 61.01, "2fa_reset")]
    f["transactions"] += [tx("atk", 61.05, amount=8000.0, address="0xEVIL")]
    atk = by_event(scan(f))["atk"]
    ev = atk.evidence
    assert ev["log10_score"] >= 3
    assert (
        ev["new_address"] is True and ev["share_of_balance"] >= 0.9 and ev["hours_after_change"] == pytest.approx(0.96)
    )
    assert {k: v["factor"] for k, v in ev["factors"].items()} == {
        "address": 8.0,
        "amount": 10.0,
        "share": 4.0,
        "change": 20.0,
        "device": 6.0,
        "network": 2.0,
        "login": 1.2,
        "age": 1.0,
    }
    assert "new address (×8.0)" in ev["text"] and "device new in this session" in ev["text"]
    assert ev["top_feature"] == "change"
    assert 0.5 < ev["probability"] < 1  # prior odds 1/1000 times a score above 1000
    assert atk.event_ids == ("atk",) and atk.kind == "score"


def test_address_book_counts_after_its_cooling_off_period() -> None:
    base = history()
    base["logins"] += [login("l-x", 70.0, "phone")]
    base["transactions"] += [tx("pay", 70.1, amount=150.0, address="0xABC123")]
    plain = by_event(scan(base))["pay"].evidence["factors"]["address"]
    assert plain["factor"] == 8.0  # never used, not in the book

    early = history()
    early["logins"] += [login("l-x", 70.0, "phone")]
    early["security_events"] += [sec("s-add", 69.0, "address_added", "0xabc123")]  # 26 h before, EVM case ignored
    early["transactions"] += [tx("pay", 70.1, amount=150.0, address="0xABC123")]
    assert by_event(scan(early))["pay"].evidence["factors"]["address"] == {
        "factor": 0.5,
        "text": "address in the address book",
    }

    late = history()
    late["logins"] += [login("l-x", 70.0, "phone")]
    late["security_events"] += [sec("s-add", 70.0, "address_added", "0xABC123")]  # 2.4 h before: cooling off
    late["transactions"] += [tx("pay", 70.1, amount=150.0, address="0xABC123")]
    cool = by_event(scan(late))["pay"].evidence["factors"]["address"]
    assert cool == {"factor": 12.0, "text": "added to the address book 2.4 h ago"}
    # a shorter cooling-off period makes the same entry familiar
    short = by_event(scan(late, WithdrawalRisk(min_log10_score=-10, cooling_off_hours=2)))["pay"]
    assert short.evidence["factors"]["address"]["factor"] == 0.5

    flagged = history()
    flagged["transactions"] += [tx("pay", 70.1, amount=150.0, address="0xNEW", address_whitelisted=True)]
    for r in flagged["transactions"]:
        r.setdefault("address_whitelisted", False)
    assert by_event(scan(flagged))["pay"].evidence["factors"]["address"]["factor"] == 0.5


def test_profiles_carry_everything_between_batches() -> None:
    """History in one batch, the withdrawal in the next: the same evidence as one scan."""
    f = history()
    f["logins"] += [login("l-atk", 61.0, "evil", asn=9009)]
    f["security_events"] += [sec("s0", 30.0, "address_added", "0xDEF456"), sec("s1", 61.01, "password_change")]
    f["transactions"] += [
        tx("atk", 61.05, amount=5000.0, address="0xEVIL"),
        tx("x", 62.0, amount=120.0, address="0xDEF456"),
    ]
    one = by_event(scan(f))
    cut = T0 + pd.Timedelta(days=61)
    first = {k: [r for r in v if r["ts"] < cut] for k, v in f.items() if k != "accounts"}
    second = {k: [r for r in v if r["ts"] >= cut] for k, v in f.items() if k != "accounts"}
    first["accounts"] = second["accounts"] = f["accounts"]
    r1 = scan(first)
    profiles = json.loads(json.dumps(r1.profiles))
    two = {**by_event(r1), **by_event(scan(second, profiles=profiles))}
    assert set(one) == set(two)
    for k in one:
        assert one[k].evidence == two[k].evidence, k
    assert one["x"].evidence["factors"]["address"]["text"] == "address in the address book"
    prof = profiles["a"]
    assert set(prof) == {"v", "n", "a", "b", "w", "bal", "c", "d", "k", "l", "o"}
    assert (
        prof["n"] == 6 and prof["bal"] == 9 * 100_000 - 6 * 10_000 and prof["b"] == {"0xdef456": prof["b"]["0xdef456"]}
    )


def test_unknown_features_are_neutral_and_counted() -> None:
    res = WithdrawalRisk(min_log10_score=-10).scan(
        Batch.from_frames(
            {
                "transactions": pd.DataFrame([tx("w", 1.0, asset_override=None)]).drop(
                    columns=["address", "asset_override"]
                )
            }
        ),
        {},
        now=T0,
    )
    (f,) = res.findings
    assert {k: v["factor"] for k, v in f.evidence["factors"].items()}["address"] == 1.0
    assert any("column 'address' absent" in s.reason for s in res.skips)


def test_parameters_are_validated() -> None:
    with pytest.raises(ParameterError, match="'share_factors' parameter of WithdrawalRisk must be three numbers"):
        WithdrawalRisk(share_factors=[4, 2])
    with pytest.raises(ParameterError, match="'min_history' parameter of WithdrawalRisk must not exceed"):
        WithdrawalRisk(min_history=60, max_history=50)
