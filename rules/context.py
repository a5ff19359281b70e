"""What a rule sees about a finding and its account, and whether a segment or a schedule applies.

Pure: the only time is the one passed in (``now`` for account age, the finding's own time for
schedules, so that replaying a batch later decides exactly as the first run did).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.base import Finding
from rules.schema import DAYS, Schedule, Segments


def account_context(account: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The ``account`` variable: every field present, with neutral values when unknown."""
    a = dict(account or {})
    created = a.get("created_at")
    age = -1
    if isinstance(created, str) and created:
        try:
            created = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            created = None
    if isinstance(created, datetime):
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        age = max(0, (now - created).days)
    return {
        "account_id": str(a.get("account_id") or ""),
        "tier": str(a.get("tier") or ""),
        "locale": str(a.get("locale") or ""),
        "timezone": str(a.get("timezone") or ""),
        "status": str(a.get("status") or "active"),
        "age_days": age,
        "country": str(a.get("country") or ""),
    }


def finding_context(f: Finding) -> dict[str, Any]:
    """The ``finding`` variable; ``ts`` is a CEL timestamp (a tz-aware datetime)."""
    return FindingView(f).full()


_FINDING: dict[str, Callable[[Finding], Any]] = {
    "id": lambda f: f.finding_id,
    "detector": lambda f: f.detector,
    "family": lambda f: f.family,
    "kind": lambda f: f.kind,
    "score": lambda f: float(f.score),
    "account_id": lambda f: f.account_id,
    "ts": lambda f: f.ts if f.ts.tzinfo is not None else f.ts.replace(tzinfo=UTC),
    "event_ids": lambda f: list(f.event_ids),
    "evidence": lambda f: dict(f.evidence),
}


class FindingView:
    """The ``finding`` variable computed field by field: a condition usually reads one or two, and
    the CEL binding converts every value it is handed, so passing less is most of the speed."""

    __slots__ = ("_cache", "finding")

    def __init__(self, finding: Finding) -> None:
        self.finding = finding
        self._cache: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if key not in self._cache:
            self._cache[key] = _FINDING[key](self.finding)
        return self._cache[key]

    def full(self) -> dict[str, Any]:
        return {k: self.get(k) for k in _FINDING}


def condition_context(
    reads: Mapping[str, frozenset[str] | None] | None,
    finding: FindingView,
    account: Mapping[str, Any],
    profile: Mapping[str, Any],
) -> dict[str, Any]:
    """Only the variables and fields a condition reads (``reads`` from the checker; None: all)."""
    if reads is None:
        return {"finding": finding.full(), "account": dict(account), "profile": dict(profile)}
    ctx: dict[str, Any] = {}
    for root, keys in reads.items():
        if root == "finding":
            ctx[root] = finding.full() if keys is None else {k: finding.get(k) for k in keys if k in _FINDING}
        else:
            src = account if root == "account" else profile
            ctx[root] = dict(src) if keys is None else {k: src[k] for k in keys if k in src}
    return ctx


def in_segment(seg: Segments | None, account: Mapping[str, Any]) -> bool:
    """Every key the segment gives must hold; an unknown age never satisfies an age bound."""
    if seg is None:
        return True
    tier = account.get("tier") or ""
    if seg.tiers is not None and tier not in seg.tiers:
        return False
    if seg.exclude_tiers is not None and tier in seg.exclude_tiers:
        return False
    if seg.locales is not None:
        loc = str(account.get("locale") or "").lower()
        if not any(loc == x.lower() or loc.startswith(x.lower() + "-") for x in seg.locales):
            return False
    age = account.get("age_days", -1)
    if seg.min_account_age_days is not None and (age < 0 or age < seg.min_account_age_days):
        return False
    return not (seg.max_account_age_days is not None and (age < 0 or age > seg.max_account_age_days))


def in_schedule(schedule: Schedule | None, at: datetime, account: Mapping[str, Any]) -> bool:
    """Whether ``at`` falls in one of the active windows, in the schedule's (or account's) zone."""
    if schedule is None:
        return True
    tz_name = schedule.timezone
    if tz_name == "account":
        tz_name = str(account.get("timezone") or "UTC")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(tz)
    day, prev_day = DAYS[local.weekday()], DAYS[(local.weekday() - 1) % 7]
    t = local.time()
    for w in schedule.active:
        end = w.end or time.max
        if w.start <= end:
            if day in w.days and w.start <= t <= end:
                return True
        elif (day in w.days and t >= w.start) or (prev_day in w.days and t <= end):
            return True  # a window across midnight belongs to the day it starts on
    return False
