"""Per-rule precision from what people said about alerts: ticket resolution codes and user answers.

Labels, strongest first:

1. a resolution code on a ticket that holds the alert (Marble's closing labels):
   ``risk_confirmed`` and ``valuable`` label it a true positive, ``false_positive`` a false one;
   when several tickets hold it, any true-positive code wins (one confirmed risk is enough);
2. else the account holder's answer: "not me" (deny) is a true positive, "it was me" (confirm)
   a false positive.

Staff codes win over the user's answer because a user can be talked into "it was me" by the very
person taking over the account.  Alerts nobody labelled count as unlabelled, never as either.
Shadow and suppressed alerts are left out: nobody was asked about them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.store.models import AlertRow, Ticket, TicketEvent
from tickets.lifecycle import CODE_IS_TRUE_POSITIVE


@dataclass(frozen=True)
class LabelledAlert:
    alert_id: str
    rule_id: str
    answer: str | None
    codes: tuple[str, ...] = ()


@dataclass
class RulePrecision:
    rule_id: str
    alerts: int = 0
    labelled: int = 0
    true_positive: int = 0
    false_positive: int = 0
    user_deny: int = 0
    user_confirm: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        return self.true_positive / self.labelled if self.labelled else None

    def as_row(self) -> dict[str, object]:
        return {"rule_id": self.rule_id, "alerts": self.alerts, "labelled": self.labelled,
                "tp": self.true_positive, "fp": self.false_positive, "precision": self.precision,
                "user_deny": self.user_deny, "user_confirm": self.user_confirm,
                **{c: self.codes.get(c, 0) for c in ("risk_confirmed", "valuable", "false_positive")}}


def label(a: LabelledAlert) -> bool | None:
    """True / False positive, or None when nobody said."""
    known = [CODE_IS_TRUE_POSITIVE[c] for c in a.codes if c in CODE_IS_TRUE_POSITIVE]
    if known:
        return any(known)
    if a.answer == "deny":
        return True
    if a.answer == "confirm":
        return False
    return None


def rule_precision(alerts: Iterable[LabelledAlert]) -> list[RulePrecision]:
    """Pure: one row per rule, sorted by rule id."""
    rows: dict[str, RulePrecision] = {}
    for a in alerts:
        r = rows.setdefault(a.rule_id, RulePrecision(a.rule_id))
        r.alerts += 1
        r.user_deny += a.answer == "deny"
        r.user_confirm += a.answer == "confirm"
        for c in set(a.codes):
            r.codes[c] = r.codes.get(c, 0) + 1
        verdict = label(a)
        if verdict is not None:
            r.labelled += 1
            r.true_positive += verdict
            r.false_positive += not verdict
    return [rows[k] for k in sorted(rows)]


def collect(session: Session, *, since: datetime | None = None, until: datetime | None = None,
            rule: str | None = None) -> list[LabelledAlert]:
    """Live alerts (by event time) with their answers and the codes of the resolved tickets holding them."""
    q = select(AlertRow.id, AlertRow.rule_id, AlertRow.answer, AlertRow.ticket_id).where(
        AlertRow.mode == "live", AlertRow.status.not_in(("shadow", "suppressed")))
    if since is not None:
        q = q.where(AlertRow.ts >= since)
    if until is not None:
        q = q.where(AlertRow.ts < until)
    if rule is not None:
        q = q.where(AlertRow.rule_id == rule)
    alerts = session.execute(q).all()
    codes: dict[str, set[str]] = defaultdict(set)
    coded = (select(TicketEvent.ref_id, Ticket.resolution_code)
             .join(Ticket, Ticket.id == TicketEvent.ticket_id)
             .where(Ticket.resolution_code.is_not(None), TicketEvent.ref_id.is_not(None),
                    TicketEvent.kind.like("alert%")))
    for ref, code in session.execute(coded):
        codes[str(ref)].add(str(code))
    by_ticket: dict[str, str] = {
        str(tid): str(code) for tid, code in session.execute(
            select(Ticket.id, Ticket.resolution_code).where(Ticket.resolution_code.is_not(None)))}
    out = []
    for aid, rule_id, answer, ticket_id in alerts:
        cs = set(codes.get(aid, ()))
        if ticket_id and by_ticket.get(ticket_id):
            cs.add(str(by_ticket[ticket_id]))
        out.append(LabelledAlert(aid, rule_id, answer, tuple(sorted(cs))))
    return out
