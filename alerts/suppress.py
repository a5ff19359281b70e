"""User-declared suppressions: a travel notice or an allow-listed withdrawal address mutes matching alerts.

Pure: :func:`suppressed` takes the decision, the account's suppressions and ``now``, and returns
the suppression that applies (the caller records it on the alert for audit) or ``None``.

* ``travel`` -- ``value = {"countries": ["JP", "KR"]}`` between ``starts_at`` and ``expires_at``:
  mutes location findings (``new_location``, ``impossible_travel``) whose login country is one of
  the declared countries and whose time is inside the trip.
* ``address`` -- ``value = {"address": "0x...", "network": "ETH"}`` (network optional): mutes
  transfer findings whose withdrawal address (or every address, for findings about several
  withdrawals) is allow-listed and active at the finding's time.

The finding's own time decides, not ``now``, so a late batch replayed after the trip still sees
the notice; ``now`` only excludes suppressions created after the decision is being made.  A rule
with ``suppressible: false`` (e.g. a security change followed by a withdrawal, where the attacker
may have added the address himself) is never muted; one with ``suppressible: step_up`` (the
default pack's transfer rules) only where the exchange declares step-up authentication for
allow-list changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

TRAVEL_DETECTORS = frozenset({"new_location", "impossible_travel"})
_COUNTRY_KEYS = ("country", "to_country", "current_country", "login_country")
_CASELESS_PREFIXES = ("0x", "bc1", "tb1", "ltc1", "bnb1", "cosmos1", "addr1")


class SuppressionLike(Protocol):
    account_id: str
    kind: str
    value: Mapping[str, Any]
    starts_at: datetime
    expires_at: datetime
    created_at: datetime


class DecisionLike(Protocol):
    @property
    def finding(self) -> Any: ...

    @property
    def rule(self) -> Any: ...


def suppressed(decision: DecisionLike, suppressions: Iterable[SuppressionLike], now: datetime, *,
               step_up: bool = False) -> Any | None:
    """The suppression of the finding's account that mutes this decision, or ``None``.

    ``step_up``: the exchange requires step-up authentication to change the address allow-list
    (settings ``suppressions.allowlist_step_up``); rules marked ``suppressible: step_up`` are muted
    only then.
    """
    mode = getattr(decision.rule, "suppressible", True)
    if mode is False or (mode == "step_up" and not step_up):
        return None
    f = decision.finding
    at, now = _utc(f.ts), _utc(now)
    mine = sorted(
        (s for s in suppressions if str(s.account_id) == str(f.account_id)),
        key=lambda s: (_utc(s.created_at), str(getattr(s, "id", ""))),
    )
    for s in mine:
        if s.kind == "travel" and _active(s, at, now) and _travel_matches(f, _value(s)):
            return s
    addrs = _addresses(f)
    if addrs:
        covering = [next((s for s in mine if _covers(s, a, net, at, now)), None) for a, net in addrs]
        if all(c is not None for c in covering):
            return covering[0]
    return None


def _active(s: SuppressionLike, at: datetime, now: datetime) -> bool:
    return _utc(s.created_at) <= now and _utc(s.starts_at) <= at < _utc(s.expires_at)


def _value(s: SuppressionLike) -> Mapping[str, Any]:
    return s.value if isinstance(s.value, Mapping) else {}


def _travel_matches(f: Any, value: Mapping[str, Any]) -> bool:
    if f.detector not in TRAVEL_DETECTORS:
        return False
    countries = {str(c).upper() for c in value.get("countries") or ()}
    evidence = f.evidence or {}
    country = next((evidence.get(k) for k in _COUNTRY_KEYS if evidence.get(k)), None)
    return country is not None and str(country).upper() in countries


def _addresses(f: Any) -> list[tuple[str, str | None]]:
    """Withdrawal addresses a transfer finding is about, with their networks when known."""
    if getattr(f, "family", "") not in ("transfer", "") or not f.evidence:
        return []
    ev = f.evidence
    net = ev.get("network")
    if ev.get("address"):
        return [(str(ev["address"]), str(net) if net else None)]
    many = ev.get("addresses")
    if isinstance(many, list) and many:
        return [(str(a), str(net) if net else None) for a in many if a]
    return []


def _covers(s: SuppressionLike, addr: str, network: str | None, at: datetime, now: datetime) -> bool:
    if s.kind != "address" or not _active(s, at, now):
        return False
    value = _value(s)
    if _addr_key(str(value.get("address", ""))) != _addr_key(addr):
        return False
    want = value.get("network")
    return not (want and network and str(want).upper() != network.upper())


def _addr_key(addr: str) -> str:
    """Hex and bech32 addresses ignore case; base58 ones (Bitcoin legacy, Tron, Solana) do not."""
    a = addr.strip()
    return a.lower() if a.lower().startswith(_CASELESS_PREFIXES) else a


def _utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes for DateTime(timezone=True): they are UTC
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
