"""The alert stage's store access: everything read set-based before the stages, written in bulk after.

:func:`load` asks the store, one chunked query per kind, which of the batch's alert ids exist, which
stored alerts can throttle, group or inhibit the batch's decisions, and which suppressions the
batch's accounts declared.  :class:`Writes` collects what the stages decide; :func:`flush` writes it
with one statement per table (:mod:`alerts.store.bulk`), then runs the new live alerts' ``on_match``
actions and queues their outbox rows.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.actions import run_actions
from alerts.store.bulk import chunk_size, chunks, insert_rows, update_rows
from alerts.store.models import AlertEvent, AlertRow, OutboxRow, Suppression
from rules.engine import Decision, Recent, family_of, group_key_of
from rules.loader import RuleSet

GROUP = "\x00group"  # the index key of rules' ``group`` windows (per group key, across rules)
ALERTS = AlertRow.__table__
EVENTS = AlertEvent.__table__
OUTBOX = OutboxRow.__table__


class ThrottleIndex:
    """Alerts per (rule, throttle key) -- and per account under :data:`GROUP` -- by event time."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], list[tuple[datetime, str]]] = {}

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


@dataclass
class Loaded:
    known: set[str]  # alert ids that exist in the store (the batch's own, and possible muters)
    index: ThrottleIndex
    severity: dict[str, str]  # alert id -> severity, for the alerts a group window may fold into
    inhibitors: list[Recent]
    suppressions: dict[str, list[Any]]  # account -> its suppressions


def load(session: Session, ordered: list[Decision], rules: RuleSet | None, now: datetime) -> Loaded:
    n = chunk_size(session)
    known: set[str] = set()
    for part in chunks(sorted({d.alert_id for d in ordered}), n):
        known.update(session.scalars(select(AlertRow.id).where(AlertRow.id.in_(part))))
    index = ThrottleIndex()
    severity: dict[str, str] = {}
    _load_throttles(session, ordered, index, n)
    group_rules: dict[str, str] = {cr.rule.id: cr.rule.group.scope for cr in rules.rules if cr.rule.group is not None} \
        if rules is not None else {d.rule.id: d.rule.group.scope for d in ordered if d.rule.group is not None}
    _load_groups(session, ordered, group_rules, index, severity, n)
    inhibitors = _live_inhibitors(session, ordered, rules, n) if rules is not None else []
    known.update(r.alert_id for r in inhibitors)
    return Loaded(known, index, severity, inhibitors, _suppressions(session, ordered, n))


def _load_throttles(session: Session, decisions: list[Decision], index: ThrottleIndex, n: int) -> None:
    wanted = [(d, d.throttle_key()) for d in decisions if d.rule.throttle is not None]
    keys = sorted({k for _d, k in wanted if k is not None})
    if not keys:
        return
    rule_ids = sorted({d.rule.id for d, _k in wanted})
    lo = min(d.finding.ts - d.rule.throttle.per for d, _k in wanted)  # type: ignore[union-attr]
    hi = max(d.finding.ts for d, _k in wanted)
    for part in chunks(keys, n):
        rows = session.execute(
            select(AlertRow.rule_id, AlertRow.throttle_key, AlertRow.ts, AlertRow.id).where(
                AlertRow.rule_id.in_(rule_ids), AlertRow.throttle_key.in_(part), AlertRow.ts > lo, AlertRow.ts <= hi))
        for rule_id, tkey, ts, aid in rows:
            index.add(rule_id, tkey, ts, aid)


def _load_groups(session: Session, decisions: list[Decision], group_rules: dict[str, str], index: ThrottleIndex,
                 severity: dict[str, str], n: int) -> None:
    """Live alerts of grouping rules (rule id -> ``group.scope``) per group key (``GROUP``), for
    ``group.window``."""
    wanted = [d for d in decisions if d.rule.group is not None]
    if not wanted or not group_rules:
        return
    accounts = sorted({d.finding.account_id for d in wanted})
    lo = min(d.finding.ts - d.rule.group.window for d in wanted)  # type: ignore[union-attr]
    hi = max(d.finding.ts for d in wanted)
    for part in chunks(accounts, n):
        rows = session.execute(
            select(AlertRow.account_id, AlertRow.ts, AlertRow.id, AlertRow.severity, AlertRow.rule_id,
                   AlertRow.detector).where(
                AlertRow.rule_id.in_(sorted(group_rules)), AlertRow.account_id.in_(part),
                AlertRow.mode == "live", AlertRow.status.notin_(("suppressed", "shadow")),
                AlertRow.ts > lo, AlertRow.ts <= hi))
        for acct, ts, aid, sev, rule_id, detector in rows:
            index.add(GROUP, group_key_of(acct, group_rules[rule_id], family_of(detector)), ts, aid)
            severity[aid] = sev


def _live_inhibitors(session: Session, decisions: list[Decision], rules: RuleSet, n: int) -> list[Recent]:
    """Stored live alerts that may mute this batch's decisions (rules with ``inhibit``)."""
    inhibiting = [cr.rule for cr in rules.rules if cr.rule.inhibit is not None]
    if not inhibiting or not decisions:
        return []
    widest = max(r.inhibit.window for r in inhibiting)  # type: ignore[union-attr]
    lo = min(d.finding.ts for d in decisions) - widest
    accounts = sorted({d.finding.account_id for d in decisions})
    out: list[Recent] = []
    cols = (AlertRow.id, AlertRow.rule_id, AlertRow.account_id, AlertRow.severity, AlertRow.ts, AlertRow.mode,
            AlertRow.detector)
    for part in chunks(accounts, n):
        rows = session.execute(select(*cols).where(
            AlertRow.account_id.in_(part), AlertRow.rule_id.in_([r.id for r in inhibiting]),
            AlertRow.ts >= lo, AlertRow.mode == "live", AlertRow.status.notin_(("suppressed", "shadow"))))
        for r in rows.mappings():
            rec = Recent.from_alert(dict(r), rules)
            if rec is not None:
                out.append(rec)
    return out


def _suppressions(session: Session, decisions: list[Decision], n: int) -> dict[str, list[Any]]:
    """User-declared suppressions (travel notices, allow-listed addresses) of the batch's accounts."""
    accounts = sorted({d.finding.account_id for d in decisions})
    found: dict[str, list[Any]] = {}
    if not accounts:
        return found
    lo = min(d.finding.ts for d in decisions)
    for part in chunks(accounts, n):
        for row in session.scalars(select(Suppression).where(Suppression.account_id.in_(part),
                                                             Suppression.expires_at > lo)):
            found.setdefault(row.account_id, []).append(row)
    return found


@dataclass
class Writes:
    """What the stages decided, in the order they decided it."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # new rows (audit anchors included)
    log: list[Any] = field(default_factory=list)  # audit rows, and coalescings resolved at flush
    lives: list[tuple[dict[str, Any], list[dict[str, Any]], bool, list[str]]] = field(default_factory=list)
    outbox_made: int = 0

    def add_alert(self, row: dict[str, Any]) -> None:
        self.alerts[row["id"]] = row

    def event(self, alert_id: str, at: datetime, event: str, detail: dict[str, Any]) -> None:
        self.log.append({"alert_id": alert_id, "at": at, "event": event, "actor": "system", "detail": detail})

    def coalesce(self, into: str, d: Decision, now: datetime, why: str) -> None:
        self.log.append((into, d, why))

    def live(self, row: dict[str, Any], actions: list[dict[str, Any]], *, deliver: bool) -> None:
        # the actions see the alert as it was created (later coalesced events are not in its ticket)
        self.lives.append((row, actions, deliver, list(row["event_ids"])))


def flush(session: Session, out: Writes, *, now: datetime, tickets: bool = True) -> None:
    """Write the batch's alerts, coalescings and audit rows; then actions and outbox rows."""
    session.flush()  # rows the ORM holds (the run, cursors, accounts) go first
    targets = {t for t in (e[0] for e in out.log if isinstance(e, tuple)) if t not in out.alerts}
    stored: dict[str, dict[str, Any]] = {}
    for part in chunks(sorted(targets), chunk_size(session)):
        for aid, ev, fi in session.execute(select(AlertRow.id, AlertRow.event_ids, AlertRow.finding_ids)
                                           .where(AlertRow.id.in_(part))):
            stored[aid] = {"id": aid, "event_ids": list(ev or []), "finding_ids": list(fi or [])}
    events: list[dict[str, Any]] = []
    changed: dict[str, dict[str, Any]] = {}
    for entry in out.log:
        if isinstance(entry, dict):
            events.append(entry)
            continue
        into, d, why = entry
        row = out.alerts.get(into) or stored.get(into)
        f = d.finding
        if row is None or f.finding_id in row["finding_ids"]:  # a replayed batch: already coalesced
            continue
        row["event_ids"] = list(dict.fromkeys([*row["event_ids"], *f.event_ids]))
        row["finding_ids"] = list(dict.fromkeys([*row["finding_ids"], f.finding_id]))
        row["updated_at"] = now
        if into not in out.alerts:
            changed[into] = row
        events.append({"alert_id": into, "at": now, "event": why, "actor": "system",
                       "detail": {"rule_id": d.rule.id, "finding_id": f.finding_id, "event_ids": list(f.event_ids)}})
    insert_rows(session, ALERTS, list(out.alerts.values()))  # type: ignore[arg-type]
    update_rows(session, ALERTS, "id", [{"id": r["id"], "event_ids": r["event_ids"],  # type: ignore[arg-type]
                                         "finding_ids": r["finding_ids"], "updated_at": now}
                                        for r in changed.values()])
    insert_rows(session, EVENTS, events)  # type: ignore[arg-type]
    _actions_and_outbox(session, out, now, tickets)


def _actions_and_outbox(session: Session, out: Writes, now: datetime, all_actions: bool) -> None:
    from alerts.outbox import outbox_rows

    tickets: list[dict[str, Any]] = []
    queued: list[dict[str, Any]] = []
    for row, every, deliver, created_events in out.lives:
        actions = every if all_actions else [a for a in every if a.get("type") == "freeze"]
        if actions:
            alert = AlertRow(**{**row, "event_ids": created_events})  # transient: what the actions read
            run_actions(session, alert, actions, trigger="match", now=now)
            if alert.ticket_id is not None:
                tickets.append({"id": row["id"], "ticket_id": alert.ticket_id})
        if deliver:
            queued.extend(outbox_rows(SimpleNamespace(**row), now=now))
    session.flush()
    update_rows(session, ALERTS, "id", tickets)  # type: ignore[arg-type]
    if queued:
        present: set[str] = set()
        for part in chunks(sorted({r["id"] for r in queued}), chunk_size(session)):
            present.update(session.scalars(select(OutboxRow.id).where(OutboxRow.id.in_(part))))
        fresh = [r for r in queued if r["id"] not in present]
        out.outbox_made = insert_rows(session, OUTBOX, fresh)  # type: ignore[arg-type]
