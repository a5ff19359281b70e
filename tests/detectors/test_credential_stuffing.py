from __future__ import annotations

from datetime import timedelta

from detectors.credential_stuffing import CredentialStuffing
from tests.detectors.login_frames import T0, batch, login, scan, scan_in_parts

BOT = "45.155.205.10"


def wave(n: int, ip: str = BOT, start_min: float = 0) -> list:
    return [
        login(f"w{i:03d}", T0 + timedelta(minutes=start_min + i), f"user{i:03d}", success=False, ip=ip)
        for i in range(n)
    ]


def test_success_from_a_hot_ip() -> None:
    rows = [
        *wave(12),
        login("hit", T0 + timedelta(minutes=13), "victim", ip=BOT),
        login("elsewhere", T0 + timedelta(minutes=14), "other", ip="8.8.8.8"),
    ]
    res = scan(CredentialStuffing(), rows)
    assert [f.event_ids for f in res.findings] == [("hit",)]
    f = res.findings[0]
    assert f.account_id == "victim" and f.kind == "success_from_stuffing_ip"
    ev = f.evidence
    assert (ev["failed_accounts"], ev["failures"], ev["attempts"], ev["failure_ratio"]) == (12, 12, 12, 1.0)
    assert ev["failed_event_ids"][-1] == "w011" and ev["ip"] == BOT
    assert f"12 other accounts failed to log in from {BOT}" in ev["text"]


def test_quiet_cases() -> None:
    hit = login("hit", T0 + timedelta(minutes=13), "victim", ip=BOT)
    assert scan(CredentialStuffing(), [*wave(9), hit]).findings == []  # 9 < min_accounts
    late = login("late", T0 + timedelta(minutes=200), "victim", ip=BOT)
    assert scan(CredentialStuffing(), [*wave(12), late]).findings == []  # outside the window
    # an office NAT: 12 failures after 40 good logins within the hour is a 23 % failure ratio
    good = [login(f"g{i}", T0 - timedelta(minutes=40 - i), f"staff{i}", ip=BOT) for i in range(40)]
    assert scan(CredentialStuffing(), [*good, *wave(12), hit]).findings == []
    assert len(scan(CredentialStuffing(min_failure_ratio=0.2), [*good, *wave(12), hit]).findings) == 1


def test_cross_account_profiles_keyed_by_ip() -> None:
    det = CredentialStuffing()
    assert det.cross_account is True
    rows = [*wave(12), login("hit", T0 + timedelta(minutes=13), "victim", ip=BOT)]
    assert det.profile_keys(batch(rows)) == {f"ip:{BOT}"}
    res = scan(det, rows)
    assert set(res.profiles) == {f"ip:{BOT}"} and len(res.profiles[f"ip:{BOT}"]["attempts"]) == 13
    one = res.findings
    assert [f.finding_id for f in scan_in_parts(det, rows, 13)] == [f.finding_id for f in one]


def test_missing_ip_column_skips() -> None:
    res = scan(CredentialStuffing(), wave(3), drop=["ip"])
    assert res.findings == [] and "'ip' absent" in res.skips[0].reason
