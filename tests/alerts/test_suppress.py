"""User suppressions: travel notices and allow-listed withdrawal addresses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.store.models import Suppression
from alerts.suppress import suppressed
from detectors.base import Finding

NOW = datetime(2024, 7, 10, 12, tzinfo=UTC)


@dataclass(frozen=True)
class _Rule:
    id: str = "r"
    suppressible: bool = True


@dataclass(frozen=True)
class _Decision:
    finding: Finding
    rule: _Rule = field(default_factory=_Rule)


def login(country: str, ts: datetime = NOW, account: str = "a1", detector: str = "new_location") -> _Decision:
    return _Decision(
        Finding(detector, account, ts, "k", "country", 0.7, ("e1",), {"country": country}, "login")
    )


def withdrawal(
    address: str | None = None,
    addresses: list[str] | None = None,
    network: str | None = "ETH",
    ts: datetime = NOW,
    suppressible: bool = True,
) -> _Decision:
    ev: dict[str, Any] = {"network": network}
    if address is not None:
        ev["address"] = address
    if addresses is not None:
        ev["addresses"] = addresses
    f = Finding("large_withdrawal", "a1", ts, "k", "absolute", 0.8, ("e2",), ev, "transfer")
    return _Decision(f, _Rule(suppressible=suppressible))


def travel(
    countries: list[str], start: datetime, end: datetime, account: str = "a1", **kw: Any
) -> Suppression:
    return Suppression(
        account_id=account,
        kind="travel",
        value={"countries": countries},
        starts_at=start,
        expires_at=end,
        created_at=kw.get("created_at", start - timedelta(days=1)),
    )


def allow(
    address: str,
    network: str | None = None,
    start: datetime = NOW - timedelta(days=2),
    end: datetime = NOW + timedelta(days=30),
) -> Suppression:
    value = {"address": address} | ({"network": network} if network else {})
    return Suppression(
        account_id="a1", kind="address", value=value, starts_at=start, expires_at=end, created_at=start
    )


TRIP = travel(["jp", "KR"], NOW - timedelta(days=3), NOW + timedelta(days=3))


def test_a_travel_notice_mutes_logins_from_the_declared_countries_during_the_trip() -> None:
    assert suppressed(login("JP"), [TRIP], NOW) is TRIP
    assert suppressed(login("KR", detector="impossible_travel"), [TRIP], NOW) is TRIP
    assert suppressed(login("CN"), [TRIP], NOW) is None
    assert suppressed(login("JP", ts=NOW + timedelta(days=4)), [TRIP], NOW) is None  # after the trip
    assert suppressed(login("JP", account="b2"), [TRIP], NOW) is None  # someone else's notice


def test_the_findings_time_decides_so_a_late_replay_still_sees_the_notice() -> None:
    during = login("JP", ts=NOW - timedelta(days=1))
    assert suppressed(during, [TRIP], NOW + timedelta(days=30)) is TRIP
    filed_later = travel(
        ["JP"], NOW - timedelta(days=3), NOW + timedelta(days=3), created_at=NOW + timedelta(hours=1)
    )
    assert suppressed(during, [filed_later], NOW) is None  # did not exist when the decision was made


def test_travel_does_not_mute_other_detectors() -> None:
    burst = _Decision(
        Finding("failed_logins", "a1", NOW, "k", "burst", 0.9, ("e",), {"country": "JP"}, "login")
    )
    assert suppressed(burst, [TRIP], NOW) is None


def test_allow_listed_addresses() -> None:
    hexaddr = "0xAbC0000000000000000000000000000000000001"
    entry = allow(hexaddr.lower(), network="eth")
    assert suppressed(withdrawal(hexaddr), [entry], NOW) is entry  # hex addresses ignore case
    assert suppressed(withdrawal(hexaddr, network="BSC"), [entry], NOW) is None  # another network
    assert suppressed(withdrawal(hexaddr, network=None), [entry], NOW) is entry  # network unknown
    base58 = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE"
    assert suppressed(withdrawal(base58.lower()), [allow(base58)], NOW) is None  # base58 is case-sensitive
    assert suppressed(withdrawal("0x01", ts=NOW - timedelta(days=3)), [allow("0x01")], NOW) is None  # not yet
    assert suppressed(withdrawal(None), [entry], NOW) is None


def test_several_withdrawals_are_muted_only_if_every_address_is_allowed() -> None:
    a, b = allow("0x0a"), allow("0x0b")
    assert suppressed(withdrawal(addresses=["0x0A", "0x0b"]), [a, b], NOW) is a
    assert suppressed(withdrawal(addresses=["0x0a", "0x0c"]), [a, b], NOW) is None


def test_a_rule_that_is_not_suppressible_is_never_muted() -> None:
    assert suppressed(withdrawal("0x0a", suppressible=False), [allow("0x0a")], NOW) is None


def test_rows_read_back_from_the_store_work_as_is(engine: Any) -> None:
    with Session(engine) as s:
        s.add_all([travel(["JP"], NOW - timedelta(days=1), NOW + timedelta(days=1)), allow("0x0a")])
        s.commit()
    with Session(engine) as s:
        rows = list(s.scalars(select(Suppression).order_by(Suppression.id)))
    assert suppressed(login("JP"), rows, NOW) is rows[0]  # naive datetimes from SQLite are UTC
    assert suppressed(withdrawal("0x0A"), rows, NOW) is rows[1]
