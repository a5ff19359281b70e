"""Match findings against a rule set: pure, no I/O.  Every matching rule yields one Decision.

A rule matches a finding when the rule is enabled, names the finding's detector, the account is
in the rule's segments, the finding's time is inside the rule's schedule, and the condition
holds.  Shadow rules match like live ones; the alert stage records them without notifying.

Inhibition (:func:`split_inhibited`) is also decided here, because it depends only on decisions
and on the alerts raised before them: a live alert from a rule with ``inhibit`` mutes alerts of
lower severity on the same account for the rule's window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from detectors.base import Finding, stable_id
from rules.context import FindingView, account_context, condition_context, in_schedule, in_segment
from rules.limits import EVAL_BUDGET_SECONDS
from rules.loader import CompiledRule, RuleSet
from rules.schema import SEVERITY_RANK, Rule

log = logging.getLogger(__name__)
__all__ = ["Decision", "Recent", "account_context", "evaluate", "in_segment", "split_inhibited"]


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

    @property
    def severity(self) -> str:
        return self.rule.severity

    @property
    def mode(self) -> str:
        return self.rule.mode

    @property
    def shadow(self) -> bool:
        return self.rule.mode == "shadow"

    def throttle_key(self) -> str | None:
        t = self.rule.throttle
        if t is None:
            return None
        parts = [self.rule.id, self.finding.account_id]
        if t.key == "account_id+detector":
            parts.append(self.finding.detector)
        elif t.key == "account_id+kind":
            parts.append(f"{self.finding.detector}:{self.finding.kind}")
        return "|".join(parts)

    def group_key(self) -> str | None:
        """Alerts with the same group key within the rule's ``group.window`` share one message: the
        account, or the account and the detector family (``group.scope: family``)."""
        g = self.rule.group
        if g is None:
            return None
        return group_key_of(self.finding.account_id, g.scope, self.finding.family)

    def actions(self, outcome: str) -> list[Any]:
        return self.rule.actions(outcome)


def evaluate(
    rules: RuleSet,
    findings: Iterable[Finding],
    accounts: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
    profiles: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    on_error: Callable[[str, Finding, str], None] | None = None,
) -> list[Decision]:
    """Decisions for ``findings`` in input order, then rule order.

    ``profiles`` (account -> detector -> state) is what ``profile`` shows a condition; ``on_error``
    hears about conditions that failed at run time (a field absent from this finding's evidence),
    which count as "does not hold".

    Each condition has an evaluation budget (:data:`rules.limits.EVAL_BUDGET_SECONDS` per finding,
    on top of the static cost bound checked at load), judged by the thread's CPU time so that a
    loaded machine does not change the answers: one that overruns it is reported through
    ``on_error`` and does not hold for the rest of the call, so one pathological rule cannot stall
    a scan that has thousands of findings to judge.
    """
    by_detector: dict[str, list[CompiledRule]] = {}
    over_budget: set[str] = set()
    known: dict[str, dict[str, Any]] = {}  # account contexts, built once per account
    out: list[Decision] = []
    for f in findings:
        matching = by_detector.get(f.detector)
        if matching is None:
            matching = by_detector[f.detector] = rules.for_detector(f.detector)
        if not matching:
            continue
        acct = known.get(f.account_id)
        if acct is None:
            acct = known[f.account_id] = account_context(accounts.get(f.account_id), now)
        view = FindingView(f)
        for cr in matching:
            rule = cr.rule
            if not in_segment(rule.segments, acct) or not in_schedule(rule.schedule, f.ts, acct):
                continue
            if cr.condition is not None:
                if rule.id in over_budget:
                    continue
                prof = (profiles or {}).get(f.account_id, {}).get(f.detector, {})
                ctx = condition_context(cr.condition.reads, view, acct, prof)
                t0 = time.perf_counter()
                holds, error = cr.condition.test(ctx)
                spent = time.perf_counter() - t0
                if spent > EVAL_BUDGET_SECONDS:
                    # wall time includes the moments a busy machine gave the CPU to someone else: judge
                    # by this thread's own CPU time on a second (pure) evaluation before switching off
                    c0 = time.thread_time()
                    holds, error = cr.condition.test(ctx)
                    spent = time.thread_time() - c0
                if spent > EVAL_BUDGET_SECONDS:
                    over_budget.add(rule.id)
                    log.warning("rule %s: condition over its evaluation budget (%.0f ms on finding %s); "
                                "it does not match for the rest of this batch", rule.id, spent * 1000,
                                f.finding_id)
                    holds, error = False, (f"over its evaluation budget ({spent * 1000:.0f} ms > "
                                           f"{EVAL_BUDGET_SECONDS * 1000:.0f} ms): off for the rest of this batch")
                if error is not None and on_error is not None:
                    on_error(rule.id, f, error)
                if not holds:
                    continue
            out.append(Decision(rule, cr.rule_hash, f))
    return out


@dataclass(frozen=True)
class Recent:
    """A live alert raised earlier, as inhibition needs it."""

    alert_id: str
    account_id: str
    severity: str
    ts: datetime
    family: str
    window: timedelta | None  # the inhibit window of its rule; None: it mutes nothing
    scope: str = "account"

    @classmethod
    def from_decision(cls, d: Decision) -> Recent:
        inh = d.rule.inhibit
        return cls(
            d.alert_id,
            d.finding.account_id,
            d.severity,
            _utc(d.finding.ts),
            d.finding.family,
            inh.window if inh else None,
            inh.scope if inh else "account",
        )

    @classmethod
    def from_alert(cls, alert: Mapping[str, Any], rules: RuleSet, family: str = "") -> Recent | None:
        """From a stored alert (``id``, ``rule_id``, ``account_id``, ``severity``, ``ts``, ``mode``)."""
        cr = rules.get(str(alert.get("rule_id")))
        if cr is None or cr.rule.inhibit is None or alert.get("mode", "live") != "live":
            return None
        if not family:
            family = family_of(str(alert.get("detector", "")))
        return cls(
            str(alert["id"]),
            str(alert["account_id"]),
            str(alert["severity"]),
            _utc(alert["ts"]),
            family,
            cr.rule.inhibit.window,
            cr.rule.inhibit.scope,
        )


def family_of(detector: str) -> str:
    """The detector family (``login``, ``transfer``, ...) of a detector name; "" when unknown."""
    from detectors import DETECTORS

    det = DETECTORS.get(str(detector))
    return det.family if det is not None else ""


def group_key_of(account_id: str, scope: str, family: str) -> str:
    """The group window's key: the account, or ``account|family`` for ``group.scope: family``."""
    return f"{account_id}|{family}" if scope == "family" else account_id


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _mutes(src: Recent, d: Decision) -> bool:
    if src.window is None or src.account_id != d.finding.account_id or src.alert_id == d.alert_id:
        return False
    if SEVERITY_RANK[src.severity] <= SEVERITY_RANK[d.severity]:
        return False
    if src.scope == "family" and src.family != d.finding.family:
        return False
    gap = _utc(d.finding.ts) - src.ts
    return timedelta(0) <= gap <= src.window


def split_inhibited(
    decisions: Sequence[Decision], recent: Iterable[Recent] = ()
) -> tuple[list[Decision], list[tuple[Decision, str]]]:
    """``(kept, muted)``: each muted decision comes with the id of the alert that muted it.

    Only alerts raised at or before a decision's finding mute it, so scanning a day in one batch
    or in ten gives the same result.  Shadow decisions never mute anything (nobody saw them).
    """
    sources = [r for r in recent if r.window is not None]
    kept: list[Decision] = []
    muted: list[tuple[Decision, str]] = []
    order = sorted(range(len(decisions)), key=lambda i: (_utc(decisions[i].finding.ts), i))
    for i in order:
        d = decisions[i]
        src = next((s for s in sources if _mutes(s, d)), None)
        if src is not None:
            muted.append((d, src.alert_id))
            continue
        kept.append(d)
        if d.rule.inhibit is not None and not d.shadow:
            sources.append(Recent.from_decision(d))
    rank = {id(d): i for i, d in enumerate(decisions)}
    kept.sort(key=lambda d: rank[id(d)])
    return kept, muted
