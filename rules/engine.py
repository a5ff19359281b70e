"""Match findings against a rule set: pure, no I/O.  Every matching rule yields one Decision."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detectors.base import Finding, stable_id
from rules.loader import CompiledRule, RuleSet
from rules.schema import Rule


@dataclass(frozen=True)
class Decision:
    """What one rule decided about one finding (the input of the alert stage)."""

    rule: Rule
    rule_hash: str
    finding: Finding

    @property
    def alert_id(self) -> str:
        # deterministic: a replayed batch gives the same id, so nothing is created twice
        return stable_id("a", self.rule.id, self.finding.finding_id)

    def throttle_key(self) -> str | None:
        t = self.rule.throttle
        if t is None:
            return None
        parts = [self.finding.account_id]
        if t.key == "account_id+detector":
            parts.append(self.finding.detector)
        elif t.key == "account_id+kind":
            parts.append(f"{self.finding.detector}:{self.finding.kind}")
        return "|".join(parts)


def account_context(account: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    a = dict(account or {})
    created = a.get("created_at")
    age = None
    if isinstance(created, datetime):
        age = max(0, (now - created).days)
    return {
        "account_id": a.get("account_id"),
        "tier": a.get("tier") or "",
        "locale": a.get("locale") or "",
        "timezone": a.get("timezone") or "",
        "status": a.get("status") or "active",
        "age_days": age if age is not None else -1,
        "country": a.get("country") or "",
    }


def in_segment(rule: Rule, account: Mapping[str, Any]) -> bool:
    s = rule.segments
    if s is None:
        return True
    if s.tiers is not None and account.get("tier") not in s.tiers:
        return False
    if s.locales is not None and account.get("locale") not in s.locales:
        return False
    age = account.get("age_days", -1)
    if s.min_account_age_days is not None and (age < 0 or age < s.min_account_age_days):
        return False
    return not (s.max_account_age_days is not None and age >= 0 and age > s.max_account_age_days)


def evaluate(
    rules: RuleSet,
    findings: Iterable[Finding],
    accounts: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
) -> list[Decision]:
    by_detector: dict[str, list[CompiledRule]] = {}
    out: list[Decision] = []
    for f in findings:
        matching = by_detector.get(f.detector)
        if matching is None:
            matching = by_detector[f.detector] = rules.for_detector(f.detector)
        if not matching:
            continue
        acct = account_context(accounts.get(f.account_id), now)
        ctx = {"finding": f.to_context(), "account": acct}
        for cr in matching:
            if not in_segment(cr.rule, acct):
                continue
            if cr.condition is not None and not cr.condition(ctx):
                continue
            out.append(Decision(cr.rule, cr.rule_hash, f))
    return out
