"""The takeover kill chain: a security change, then money out within the window."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from detectors import Batch, ParameterError
from detectors.withdrawal_after_change import WithdrawalAfterChange

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def wd(eid: str, acct: str, hours: float, amount: float = 900.0) -> dict[str, Any]:
    return {
        "event_id": eid,
        "account_id": acct,
        "ts": T0 + pd.Timedelta(hours=hours),
        "kind": "withdrawal",
        "asset": "USDT",
        "amount": amount,
        "address": "0xabc",
    }


def sec(eid: str, acct: str, hours: float, kind: str, ip: str | None = "198.51.100.7") -> dict[str, Any]:
    return {"event_id": eid, "account_id": acct, "ts": T0 + pd.Timedelta(hours=hours), "kind": kind, "ip": ip}


def frames(txs: list[dict[str, Any]], secs: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    out = {}
    if txs:
        out["transactions"] = pd.DataFrame(txs)
    if secs:
        out["security_events"] = pd.DataFrame(secs)
    return out


def run(txs, secs, det=None, profiles=None):  # type: ignore[no-untyped-def]
    return (det or WithdrawalAfterChange()).scan(Batch.from_frames(frames(txs, secs)), profiles or {}, now=T0)


def test_withdrawal_after_password_and_2fa_change() -> None:
    res = run(
        [wd("w1", "a", 3), wd("w2", "a", 30)],
        [
            sec("s1", "a", 1, "password_change"),
            sec("s2", "a", 2, "2fa_disabled"),
            sec("s3", "a", 2.5, "api_key_created"),
        ],
    )
    [f] = res.findings  # w2 is 28 h after the last change: outside 24 h
    assert f.event_ids == ("s1", "s2", "w1") and f.kind == "2fa_disabled"
    ev = f.evidence
    assert ev["change_kinds"] == ["password_change", "2fa_disabled"] and ev["hours_after_change"] == 1.0
    assert ev["change_ip"] == "198.51.100.7" and ev["amount"] == 900.0
    assert f.score > 0.9


def test_change_at_the_same_instant_counts_and_other_accounts_do_not() -> None:
    res = run([wd("w1", "a", 1), wd("w2", "b", 1)], [sec("s1", "a", 1, "email_change")])
    assert [f.event_ids for f in res.findings] == [("s1", "w1")]


def test_change_kinds_and_window_are_configurable() -> None:
    det = WithdrawalAfterChange(window_hours=2, change_kinds=["api_key_created"])
    res = run(
        [wd("w1", "a", 1.5), wd("w2", "a", 3)],
        [sec("s1", "a", 0, "api_key_created"), sec("s2", "a", 1, "password_change")],
        det,
    )
    assert [f.event_ids for f in res.findings] == [("s1", "w1")]


def test_change_in_an_earlier_batch_is_remembered() -> None:
    first = run([], [sec("s1", "a", 0, "phone_change")])
    prof = json.loads(json.dumps(first.profiles))
    assert prof["a"]["c"][0][1:3] == ["s1", "phone_change"]
    second = run([wd("w1", "a", 5)], [], profiles=prof)
    assert [f.event_ids for f in second.findings] == [("s1", "w1")]


def test_late_change_still_reports_the_earlier_withdrawal_once() -> None:
    first = run([wd("w1", "a", 5)], [])
    assert first.findings == []
    prof = json.loads(json.dumps(first.profiles))
    late = run([], [sec("s1", "a", 4, "2fa_reset")], profiles=prof)
    [f] = late.findings
    assert f.event_ids == ("s1", "w1") and f.evidence["amount"] == 900.0
    on_time = run([wd("w1", "a", 5)], [sec("s1", "a", 4, "2fa_reset")])
    assert f.finding_id == on_time.findings[0].finding_id  # same id: the alert stage never doubles it


def test_empty_kinds_are_refused() -> None:
    with pytest.raises(
        ParameterError, match="'change_kinds' parameter of WithdrawalAfterChange must not be empty"
    ):
        WithdrawalAfterChange(change_kinds=[])
    with pytest.raises(ParameterError, match="accepts only"):
        WithdrawalAfterChange(change_kinds=["password_chnage"])
