"""Turn decisions into alerts, tickets and outbox rows (inside the scan's transaction).

Deterministic alert ids make a replayed batch a no-op.  Throttling is by event time, so a
backtest and the daemon agree, and a throttled finding is *coalesced* into the alert that
muted it (its events join that alert's ``event_ids``) rather than silently dropped.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.actions import run_actions
from alerts.answer_policy import confirm_channels_for
from alerts.lifecycle import NEW, SHADOW
from alerts.outbox import PENDING
from alerts.store.models import AlertEvent, AlertRow, OutboxRow, Suppression
from alerts.suppress import suppressed
from alerts.tokens import new_sms_code
from detectors.base import stable_id
from rules.engine import Decision, Recent, split_inhibited
from rules.loader import RuleSet
from rules.schema import SEVERITY_RANK

Suppressor = Callable[[Decision], Mapping[str, Any] | None]


@dataclass
class StageReport:
    created: list[str] = field(default_factory=list)
    shadow: list[str] = field(default_factory=list)
    replayed: int = 0
    throttled: int = 0
    suppressed: int = 0
    inhibited: int = 0
    grouped: int = 0
    outbox: int = 0


def _dump_actions(actions: Iterable[Any]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in actions]


def plan_for(d: Decision) -> dict[str, Any]:
    r = d.rule
    n = r.notify
    return {
        "notify": None if n is None else {
            "channels": list(n.channels), "template": n.template, "confirm": n.confirm,
            "expires_s": int(n.expires.total_seconds()), "strategy": n.strategy,
            "confirm_channels": list(confirm_channels_for(r.severity, n.channels, n.confirm_channels)),
        },
        "on_denied": _dump_actions(r.on_denied),
        "on_confirmed": _dump_actions(r.on_confirmed),
        "on_expired": _dump_actions(r.on_expired),
    }


def apply_decisions(
    session: Session,
    decisions: Iterable[Decision],
    *,
    now: datetime,
    suppressor: Suppressor | None = None,
    deliver: bool = True,
    rules: RuleSet | None = None,
) -> StageReport:
    """Create what the decisions call for.  ``deliver=False`` (backtests) writes no outbox rows."""
    report = StageReport()
    ordered = sorted(decisions, key=lambda d: (d.finding.ts, -SEVERITY_RANK[d.rule.severity], d.alert_id))
    existing = _existing_ids(session, [d.alert_id for d in ordered])
    recent = _ThrottleIndex(session, ordered)
    group_rules = {cr.rule.id for cr in rules.rules if cr.rule.group is not None} if rules is not None else {
        d.rule.id for d in ordered if d.rule.group is not None}
    recent.load_groups(session, ordered, group_rules)
    if suppressor is None:
        suppressor = _suppressor(session, ordered, now)
    _kept, muted_list = split_inhibited(ordered, _live_inhibitors(session, ordered, rules) if rules else ())
    muted = {id(d): by for d, by in muted_list}
    for d in ordered:
        aid = d.alert_id
        if aid in existing:
            report.replayed += 1
            continue
        f = d.finding
        if suppressor is not None:
            sup = suppressor(d)
            if sup is not None:
                report.suppressed += 1
                session.add(AlertEvent(alert_id=_suppression_anchor(session, d, now), at=now, event="suppressed",
                                       detail={"finding_id": f.finding_id, "rule_id": d.rule.id, **sup}))
                continue
        tkey = d.throttle_key()
        if d.rule.throttle is not None and tkey is not None:
            muting = recent.muting(d.rule.id, tkey, f.ts, d.rule.throttle.per, d.rule.throttle.max)
            if muting is not None:
                _coalesce(session, session.get(AlertRow, muting), d, now, "throttled")  # type: ignore[arg-type]
                report.throttled += 1
                continue
        grp = d.rule.group
        if grp is not None and d.rule.mode == "live":
            into_id = recent.muting(GROUP, f.account_id, f.ts, grp.window, 1)
            into = session.get(AlertRow, into_id) if into_id is not None else None
            # one message for the account's alerts within the window -- but never fold a more severe
            # alert (and its actions) into a milder one
            if into is not None and SEVERITY_RANK[into.severity] >= SEVERITY_RANK[d.rule.severity]:
                _coalesce(session, into, d, now, "grouped")
                report.grouped += 1
                continue
        muter = session.get(AlertRow, muted[id(d)]) if id(d) in muted else None
        if muter is not None:  # a higher-severity alert's inhibit window covers this one
            _coalesce(session, muter, d, now, "inhibited")
            report.inhibited += 1
            continue
        shadow = d.rule.mode == "shadow"
        n = d.rule.notify
        expires = f.ts if n is None else max(now, f.ts) + n.expires
        alert = AlertRow(
            id=aid, rule_id=d.rule.id, rule_hash=d.rule_hash, detector=f.detector, account_id=f.account_id,
            severity=d.rule.severity, mode=d.rule.mode, status=SHADOW if shadow else NEW, ts=f.ts,
            finding_ids=[f.finding_id], event_ids=list(f.event_ids), evidence={"kind": f.kind, **f.evidence},
            template=n.template if n else "", channels=list(n.channels) if n else [], plan=plan_for(d),
            confirm=bool(n and n.confirm), throttle_key=tkey,
            sms_code=new_sms_code() if n and n.confirm and "sms" in n.channels else None,
            expires_at=expires if n and n.confirm else None, created_at=now, updated_at=now,
        )
        session.add(alert)
        existing.add(aid)
        if tkey is not None:
            recent.add(d.rule.id, tkey, f.ts, aid)
        if grp is not None and not shadow:
            recent.add(GROUP, f.account_id, f.ts, aid)
        session.flush()  # the row must exist before rows that reference it (no ORM relationships)
        session.add(AlertEvent(alert_id=aid, at=now, event="created",
                               detail={"rule_hash": d.rule_hash, "score": f.score, "mode": d.rule.mode}))
        if shadow:
            report.shadow.append(aid)
            continue
        report.created.append(aid)
        run_actions(session, alert, _dump_actions(d.rule.on_match), trigger="match", now=now)
        if deliver and n is not None:
            report.outbox += enqueue_notifications(session, alert, now=now)
        session.flush()
    return report


def enqueue_notifications(session: Session, alert: AlertRow, *, now: datetime, purpose: str = "alert",
                          template: str | None = None, channels: list[str] | None = None) -> int:
    """One outbox row per channel (``strategy: all``) or the first channel with the rest as fallback."""
    plan = alert.plan.get("notify") or {}
    chans = channels if channels is not None else list(plan.get("channels", []))
    if not chans:
        return 0
    tmpl = template or plan.get("template") or alert.template
    prio = {"critical": 0, "high": 1, "medium": 3, "low": 5}.get(alert.severity, 5)
    if plan.get("strategy") == "fallback" and purpose == "alert":
        rows = [(chans[0], chans[1:])]
    else:
        rows = [(c, []) for c in chans]
    made = 0
    for ch, fallback in rows:
        oid = stable_id("o", alert.id, ch, purpose)
        if session.get(OutboxRow, oid) is not None:
            continue
        session.add(OutboxRow(
            id=oid, alert_id=alert.id, account_id=alert.account_id, channel=ch, purpose=purpose,
            template=tmpl, priority=prio, payload={"fallback": fallback}, status=PENDING,
            next_attempt_at=now, created_at=now,
        ))
        made += 1
    return made


def _existing_ids(session: Session, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), 900):
        found.update(session.scalars(select(AlertRow.id).where(AlertRow.id.in_(ids[i : i + 900]))))
    return found


GROUP = "\x00group"  # the index key of rules' ``group`` windows (per account, across rules)


class _ThrottleIndex:
    """Alerts per (rule, throttle key) by event time: one query for the batch, then in memory."""

    def __init__(self, session: Session, decisions: list[Decision]) -> None:
        self.by_key: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        wanted = [(d, d.throttle_key()) for d in decisions if d.rule.throttle is not None]
        keys = sorted({k for _d, k in wanted if k is not None})
        if not keys:
            return
        rules = sorted({d.rule.id for d, _k in wanted})
        lo = min(d.finding.ts - d.rule.throttle.per for d, _k in wanted)  # type: ignore[union-attr]
        hi = max(d.finding.ts for d, _k in wanted)
        for i in range(0, len(keys), 900):
            rows = session.execute(
                select(AlertRow.rule_id, AlertRow.throttle_key, AlertRow.ts, AlertRow.id).where(
                    AlertRow.rule_id.in_(rules), AlertRow.throttle_key.in_(keys[i : i + 900]),
                    AlertRow.ts > lo, AlertRow.ts <= hi)
            )
            for rule_id, tkey, ts, aid in rows:
                self.add(rule_id, tkey, ts, aid)

    def load_groups(self, session: Session, decisions: list[Decision], group_rules: set[str]) -> None:
        """Live alerts of grouping rules per account (key ``GROUP``), for ``group.window``."""
        wanted = [d for d in decisions if d.rule.group is not None]
        if not wanted or not group_rules:
            return
        accounts = sorted({d.finding.account_id for d in wanted})
        lo = min(d.finding.ts - d.rule.group.window for d in wanted)  # type: ignore[union-attr]
        hi = max(d.finding.ts for d in wanted)
        for i in range(0, len(accounts), 900):
            rows = session.execute(
                select(AlertRow.account_id, AlertRow.ts, AlertRow.id).where(
                    AlertRow.rule_id.in_(sorted(group_rules)), AlertRow.account_id.in_(accounts[i : i + 900]),
                    AlertRow.mode == "live", AlertRow.status.notin_(("suppressed", "shadow")),
                    AlertRow.ts > lo, AlertRow.ts <= hi)
            )
            for acct, ts, aid in rows:
                self.add(GROUP, acct, ts, aid)

    def add(self, rule_id: str, tkey: str, ts: datetime, alert_id: str) -> None:
        insort(self.by_key.setdefault((rule_id, tkey), []), (ts, alert_id))

    def muting(self, rule_id: str, tkey: str, ts: datetime, per: timedelta, limit: int) -> str | None:
        """The latest alert in (ts - per, ts] if the window already holds ``limit`` alerts."""
        items = self.by_key.get((rule_id, tkey), [])
        lo = bisect_right(items, (ts - per, "\uffff"))
        hi = bisect_right(items, (ts, "\uffff"))
        window = items[lo:hi]
        if len(window) < limit:
            return None
        return max(window, key=lambda x: (x[0], [-ord(c) for c in x[1]]))[1]


def _live_inhibitors(session: Session, decisions: list[Decision], rules: RuleSet) -> list[Recent]:
    """Stored live alerts that may mute this batch's decisions (rules with ``inhibit``)."""
    inhibiting = [cr.rule for cr in rules.rules if cr.rule.inhibit is not None]
    if not inhibiting or not decisions:
        return []
    widest = max(r.inhibit.window for r in inhibiting)  # type: ignore[union-attr]
    lo = min(d.finding.ts for d in decisions) - widest
    accounts = sorted({d.finding.account_id for d in decisions})
    out: list[Recent] = []
    for i in range(0, len(accounts), 900):
        rows = session.scalars(select(AlertRow).where(
            AlertRow.account_id.in_(accounts[i : i + 900]), AlertRow.rule_id.in_([r.id for r in inhibiting]),
            AlertRow.ts >= lo, AlertRow.mode == "live", AlertRow.status.notin_(("suppressed", "shadow"))))
        for a in rows:
            rec = Recent.from_alert({"id": a.id, "rule_id": a.rule_id, "account_id": a.account_id,
                                     "severity": a.severity, "ts": a.ts, "mode": a.mode, "detector": a.detector},
                                    rules)
            if rec is not None:
                out.append(rec)
    return out


def _suppressor(session: Session, decisions: list[Decision], now: datetime) -> Suppressor | None:
    """User-declared suppressions (travel notices, allow-listed addresses) of the batch's accounts."""
    accounts = sorted({d.finding.account_id for d in decisions})
    if not accounts:
        return None
    lo = min(d.finding.ts for d in decisions)
    found: dict[str, list[Any]] = {}
    for i in range(0, len(accounts), 900):
        for row in session.scalars(select(Suppression).where(
                Suppression.account_id.in_(accounts[i : i + 900]), Suppression.expires_at > lo)):
            found.setdefault(row.account_id, []).append(row)
    if not found:
        return None
    step_up = bool(session.info.get("allowlist_step_up"))  # settings: suppressions.allowlist_step_up

    def check(d: Decision) -> Mapping[str, Any] | None:
        sup = suppressed(d, found.get(d.finding.account_id, ()), now, step_up=step_up)
        if sup is None:
            return None
        return {"suppression_id": sup.id, "kind": sup.kind, "value": dict(sup.value or {}),
                "expires_at": sup.expires_at.isoformat()}

    return check


def _coalesce(session: Session, into: AlertRow, d: Decision, now: datetime, why: str) -> None:
    f = d.finding
    if f.finding_id in into.finding_ids:  # a replayed batch: already coalesced
        return
    into.event_ids = list(dict.fromkeys([*into.event_ids, *f.event_ids]))
    into.finding_ids = list(dict.fromkeys([*into.finding_ids, f.finding_id]))
    into.updated_at = now
    session.add(AlertEvent(alert_id=into.id, at=now, event=why,
                           detail={"rule_id": d.rule.id, "finding_id": f.finding_id, "event_ids": list(f.event_ids)}))


def _suppression_anchor(session: Session, d: Decision, now: datetime) -> str:
    """Suppressed decisions are audited on a shadow-like alert row of their own."""
    aid = d.alert_id
    if session.get(AlertRow, aid) is None:
        f = d.finding
        session.add(AlertRow(
            id=aid, rule_id=d.rule.id, rule_hash=d.rule_hash, detector=f.detector, account_id=f.account_id,
            severity=d.rule.severity, mode=d.rule.mode, status="suppressed", ts=f.ts,
            finding_ids=[f.finding_id], event_ids=list(f.event_ids), evidence={"kind": f.kind, **f.evidence},
            plan={}, created_at=now, updated_at=now,
        ))
        session.flush()
    return aid
