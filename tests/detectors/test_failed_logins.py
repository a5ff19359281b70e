from __future__ import annotations

from datetime import timedelta

from detectors.failed_logins import FailedLogins
from tests.detectors.login_frames import T0, login, scan, scan_in_parts


def fails(n: int, start_min: float = 0, every_min: float = 3, account: str = "alice", prefix: str = "f") -> list:
    return [
        login(
            f"{prefix}{i:02d}",
            T0 + timedelta(minutes=start_min + i * every_min),
            account,
            success=False,
            ip=f"5.6.7.{i % 3}",
        )
        for i in range(n)
    ]


def test_one_finding_per_burst() -> None:
    res = scan(FailedLogins(), fails(15))
    assert [f.kind for f in res.findings] == ["burst"]
    f = res.findings[0]
    assert f.event_ids == tuple(f"f{i:02d}" for i in range(10))  # the tenth failure starts the burst
    ev = f.evidence
    assert ev["failures"] == 10 and ev["distinct_ips"] == 3 and ev["window_minutes"] == 60
    assert ev["text"] == "10 failed logins in 60 min from 3 IP address(es)"


def test_nine_failures_are_not_a_burst_and_slow_ones_never_add_up() -> None:
    assert scan(FailedLogins(), fails(9)).findings == []
    assert scan(FailedLogins(), fails(30, every_min=7)).findings == []  # at most 9 in any hour


def test_success_during_a_burst() -> None:
    rows = [*fails(12), login("ok", T0 + timedelta(minutes=40), ip="5.6.7.1")]
    res = scan(FailedLogins(), rows)
    kinds = {f.kind: f for f in res.findings}
    assert set(kinds) == {"burst", "success_after_burst"}
    s = kinds["success_after_burst"]
    assert s.event_ids[-1] == "ok" and s.evidence["success_event_id"] == "ok" and s.score == 0.9
    assert s.evidence["failures"] == 12
    # the same success two hours later is outside the burst
    late = [*fails(12), login("ok", T0 + timedelta(hours=3))]
    assert [f.kind for f in scan(FailedLogins(), late).findings] == ["burst"]


def test_a_second_burst_after_a_quiet_hour() -> None:
    rows = [*fails(10), *fails(10, start_min=200, prefix="g")]
    assert [f.event_ids[-1] for f in scan(FailedLogins(), rows).findings] == ["f09", "g09"]


def test_bursts_across_batches_and_accounts_apart() -> None:
    rows = [
        *fails(14),
        *fails(10, start_min=1, account="bob", prefix="b"),
        *fails(5, account="carol", prefix="c"),
    ]
    one = scan(FailedLogins(), rows).findings
    assert sorted(f.account_id for f in one) == ["alice", "bob"]
    assert sorted(f.finding_id for f in scan_in_parts(FailedLogins(), rows, 9)) == sorted(f.finding_id for f in one)
