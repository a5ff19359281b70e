"""Turn decisions into alerts, tickets and outbox rows: a pipeline of batched stages.

    decisions ─► Replay ─► Suppress ─► Throttle ─► Group ─► Inhibit ─► Create ─► bulk writes

Alertmanager's notify pipeline is the model: each :class:`Stage` takes the decisions that reached
it, settles some and passes the rest on.  A replay (its deterministic alert id exists) is skipped;
a user suppression mutes a decision with an audit event; a throttle, a rule's ``group`` window or a
higher-severity rule's inhibit window *coalesces* it into the alert that muted it (its events join
that alert's ``event_ids``) instead of dropping it; what is left is created with a plan, its
``on_match`` actions and one outbox row per channel.

Replay and Suppress judge each decision alone and run over the whole batch at once.  Throttle,
Group and Inhibit depend on which alerts were created before a decision -- by event time, so a
backtest and the daemon agree -- and each looks at one account's alerts only.  The batch therefore
passes them in *waves*: the first open decision of every account, then the second, and so on.
No two decisions of a wave share an account, so each stage still handles many decisions per call
and the result is exactly that of taking the decisions one by one in time order.

Everything the stages need from the store is read set-based before the first stage, and everything
they produce is written after the last one with one bulk statement per table
(:mod:`alerts.stage_io`), inside the scan's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from alerts.answer_policy import confirm_channels_for
from alerts.lifecycle import NEW, SHADOW
from alerts.stage_io import GROUP, Loaded, Writes, flush, load
from alerts.suppress import suppressed
from alerts.tokens import new_sms_code
from rules.engine import Decision, split_inhibited
from rules.loader import RuleSet
from rules.schema import SEVERITY_RANK

Suppressor = Callable[[Decision], Mapping[str, Any] | None]
__all__ = ["PIPELINE", "Stage", "StageContext", "StageReport", "apply_decisions", "plan_for"]


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


@dataclass
class StageContext:
    """What the stages share: the store's answers read up front, and the writes they queue."""

    now: datetime
    deliver: bool
    loaded: Loaded
    suppressor: Suppressor | None
    muted: dict[int, str]  # id(decision) -> the alert whose inhibit window covers it
    report: StageReport = field(default_factory=StageReport)
    out: Writes = field(default_factory=Writes)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule id -> plan (one per rule)

    def exists(self, alert_id: str) -> bool:
        return alert_id in self.loaded.known or alert_id in self.out.alerts


class Stage(Protocol):
    """One step of the pipeline: returns the decisions it passes on, in the order it got them."""

    name: str

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]: ...


class Replay:
    """A decision whose alert exists already (a replayed batch, a crash before commit) is skipped."""

    name = "replay"

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]:
        out: list[Decision] = []
        seen: set[str] = set()
        for d in decisions:
            aid = d.alert_id
            if aid in ctx.loaded.known or aid in seen:
                ctx.report.replayed += 1
                continue
            seen.add(aid)
            out.append(d)
        return out


class Suppress:
    """User-declared suppressions (travel notices, allow-listed addresses): audited, never sent."""

    name = "suppress"

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]:
        if ctx.suppressor is None:
            return decisions
        out: list[Decision] = []
        for d in decisions:
            sup = ctx.suppressor(d)
            if sup is None:
                out.append(d)
                continue
            ctx.report.suppressed += 1
            f = d.finding
            ctx.out.add_alert(_row(d, status="suppressed", plan={}, now=ctx.now))  # the audit anchor
            ctx.out.event(d.alert_id, ctx.now, "suppressed",
                          {"finding_id": f.finding_id, "rule_id": d.rule.id, **sup})
        return out


class Throttle:
    """At most ``throttle.max`` alerts per rule and key within ``throttle.per`` (by event time)."""

    name = "throttle"

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]:
        out: list[Decision] = []
        for d in decisions:
            t, tkey = d.rule.throttle, d.throttle_key()
            if t is not None and tkey is not None:
                muting = ctx.loaded.index.muting(d.rule.id, tkey, d.finding.ts, t.per, t.max)
                if muting is not None:
                    ctx.out.coalesce(muting, d, ctx.now, "throttled")
                    ctx.report.throttled += 1
                    continue
            out.append(d)
        return out


class Group:
    """One message for an account's live alerts within a rule's ``group.window`` -- but never a
    more severe alert (and its actions) folded into a milder one."""

    name = "group"

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]:
        out: list[Decision] = []
        for d in decisions:
            grp = d.rule.group
            if grp is not None and d.rule.mode == "live":
                into = ctx.loaded.index.muting(GROUP, d.group_key() or "", d.finding.ts, grp.window, 1)
                sev = ctx.loaded.severity.get(into) if into is not None else None
                if into is not None and sev is not None and SEVERITY_RANK[sev] >= SEVERITY_RANK[d.rule.severity]:
                    ctx.out.coalesce(into, d, ctx.now, "grouped")
                    ctx.report.grouped += 1
                    continue
            out.append(d)
        return out


class Inhibit:
    """A higher-severity alert's inhibit window covers the decision (decided by ``split_inhibited``
    over the whole batch); it is coalesced when that alert exists."""

    name = "inhibit"

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]:
        out: list[Decision] = []
        for d in decisions:
            muter = ctx.muted.get(id(d))
            if muter is not None and ctx.exists(muter):
                ctx.out.coalesce(muter, d, ctx.now, "inhibited")
                ctx.report.inhibited += 1
                continue
            out.append(d)
        return out


class Create:
    """The alert itself, with its plan; live alerts get their actions and outbox rows at flush."""

    name = "create"

    def run(self, ctx: StageContext, decisions: list[Decision]) -> list[Decision]:
        for d in decisions:
            f, rule = d.finding, d.rule
            shadow = rule.mode == "shadow"
            plan = ctx.plans.get(rule.id)
            if plan is None:
                plan = ctx.plans[rule.id] = plan_for(d)
            n = rule.notify
            row = _row(d, status=SHADOW if shadow else NEW, plan=plan, now=ctx.now)
            row["sms_code"] = new_sms_code() if n and n.confirm and "sms" in n.channels else None
            row["expires_at"] = (max(ctx.now, f.ts) + n.expires) if n and n.confirm else None
            ctx.out.add_alert(row)
            aid = d.alert_id
            tkey = row["throttle_key"]
            if tkey is not None:
                ctx.loaded.index.add(rule.id, tkey, f.ts, aid)
            if rule.group is not None and not shadow:
                ctx.loaded.index.add(GROUP, d.group_key() or "", f.ts, aid)
            ctx.loaded.severity[aid] = rule.severity
            ctx.out.event(aid, ctx.now, "created", {"rule_hash": d.rule_hash, "score": f.score, "mode": rule.mode})
            if shadow:
                ctx.report.shadow.append(aid)
                continue
            ctx.report.created.append(aid)
            ctx.out.live(row, _dump_actions(rule.on_match), deliver=ctx.deliver and n is not None)
        return decisions


BATCH_STAGES: tuple[Stage, ...] = (Replay(), Suppress())
WAVE_STAGES: tuple[Stage, ...] = (Throttle(), Group(), Inhibit(), Create())
PIPELINE: tuple[Stage, ...] = BATCH_STAGES + WAVE_STAGES


def apply_decisions(
    session: Session,
    decisions: Iterable[Decision],
    *,
    now: datetime,
    suppressor: Suppressor | None = None,
    deliver: bool = True,
    rules: RuleSet | None = None,
    tickets: bool = True,
) -> StageReport:
    """Create what the decisions call for.  ``deliver=False`` (backtests) writes no outbox rows;
    ``tickets=False`` (backtests) runs only the actions later rules can see (a freeze changes
    ``account.status``), not tickets, webhooks or escalations, which a backtest never reports."""
    ordered = sorted(decisions, key=lambda d: (d.finding.ts, -SEVERITY_RANK[d.rule.severity], d.alert_id))
    if not ordered:
        return StageReport()
    loaded = load(session, ordered, rules, now)
    if suppressor is None and loaded.suppressions:
        suppressor = _suppressor(loaded.suppressions, now,  # settings: suppressions.allowlist_step_up
                                 step_up=bool(session.info.get("allowlist_step_up")))
    _kept, muted_list = split_inhibited(ordered, loaded.inhibitors)
    ctx = StageContext(now=now, deliver=deliver, loaded=loaded, suppressor=suppressor,
                       muted={id(d): by for d, by in muted_list})
    open_ = ordered
    for stage in BATCH_STAGES:
        open_ = stage.run(ctx, open_)
    for wave in _waves(open_):
        for stage in WAVE_STAGES:
            wave = stage.run(ctx, wave)
    flush(session, ctx.out, now=now, tickets=tickets)
    ctx.report.outbox = ctx.out.outbox_made
    rank = {d.alert_id: i for i, d in enumerate(ordered)}
    ctx.report.created.sort(key=rank.__getitem__)
    ctx.report.shadow.sort(key=rank.__getitem__)
    return ctx.report


def _waves(decisions: list[Decision]) -> Iterable[list[Decision]]:
    """The k-th open decision of every account, for k = 0, 1, ...; each wave in batch order."""
    queues: dict[str, list[Decision]] = {}
    for d in decisions:
        queues.setdefault(d.finding.account_id, []).append(d)
    rank = {id(d): i for i, d in enumerate(decisions)}
    open_ = list(queues.values())
    k = 0
    while open_:
        yield sorted((q[k] for q in open_), key=lambda d: rank[id(d)])
        k += 1
        open_ = [q for q in open_ if len(q) > k]


def _dump_actions(actions: Iterable[Any]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in actions]


def plan_for(d: Decision) -> dict[str, Any]:
    """A snapshot of the rule's notify settings and answer actions, taken when the alert is created."""
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


def _row(d: Decision, *, status: str, plan: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The ``vigil_alerts`` row of a decision, every column given (one shape for the bulk insert)."""
    f, rule = d.finding, d.rule
    n = rule.notify if status != "suppressed" else None
    return {
        "id": d.alert_id, "rule_id": rule.id, "rule_hash": d.rule_hash, "detector": f.detector,
        "account_id": f.account_id, "severity": rule.severity, "mode": rule.mode, "status": status, "ts": f.ts,
        "finding_ids": [f.finding_id], "event_ids": list(f.event_ids), "evidence": {"kind": f.kind, **f.evidence},
        "template": n.template if n else "", "channels": list(n.channels) if n else [], "plan": plan,
        "confirm": bool(n and n.confirm), "throttle_key": d.throttle_key() if status != "suppressed" else None,
        "group_key": None, "sms_code": None, "expires_at": None, "answered_at": None, "answer": None,
        "escalation_step": 0, "ticket_id": None, "created_at": now, "updated_at": now, "version": 1,
    }


def _suppressor(found: Mapping[str, list[Any]], now: datetime, *, step_up: bool = False) -> Suppressor:
    def check(d: Decision) -> Mapping[str, Any] | None:
        sup = suppressed(d, found.get(d.finding.account_id, ()), now, step_up=step_up)
        if sup is None:
            return None
        return {"suppression_id": sup.id, "kind": sup.kind, "value": dict(sup.value or {}),
                "expires_at": sup.expires_at.isoformat()}

    return check
