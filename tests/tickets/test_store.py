"""Tickets in the store (SQLite and PostgreSQL): text tickets, staff actions, SLA pause, queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.db import session_factory
from alerts.store.models import AccountRow, OutboxRow, Ticket, TicketEvent
from tickets.core import (
    TicketConflict,
    TicketError,
    TicketNotFound,
    assign,
    open_from_text,
    open_or_attach,
    resolve,
    transition,
)
from tickets.escalation import sla_tick
from tickets.lifecycle import TicketStateError
from tickets.queries import FilterError, TicketFilter, list_tickets, show_ticket
from tickets.routing import DEFAULT_POLICY, load_policy

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # a Tuesday, 11:00 in Seoul


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    s = session_factory(engine)
    with s.begin() as db:
        db.add_all([AccountRow(account_id="K1", locale="ko", tier="regular", status="active"),
                    AccountRow(account_id="V1", locale="zh-TW", tier="vip", status="active")])
    yield s


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def _open(s: Session, account: str = "K1", category: str = "account_security", priority: str = "P2",
          ref: str = "a1", **kw: object) -> Ticket:
    return open_or_attach(s, account_id=account, category=category, priority=priority, now=NOW, subject="s",
                          kind="alert", ref_id=ref, detail={"severity": "high"}, **kw)  # type: ignore[arg-type]


def test_text_from_the_user_is_classified_routed_and_recorded(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        text = "누가 제 계정에 로그인해서 비밀번호를 바꿨어요. 제가 아닙니다"
        hacked = open_from_text(s, "K1", text, "ko", NOW)
        vague = open_from_text(s, "V1", "hello, is anyone there?", "en", NOW, channel="email")
    assert hacked.classification.category == "account_security" and not hacked.triaged
    assert vague.triaged and vague.classification.confidence < 0.55
    with sessions() as s:
        t = s.get(Ticket, hacked.ticket.id)
        assert t is not None and (t.queue, t.priority, t.category) == ("security", "P2", "account_security")
        assert t.classifier_confidence == pytest.approx(hacked.classification.confidence, abs=1e-4)
        assert _aware(t.first_response_due) == NOW + timedelta(hours=1)
        triaged = s.get(Ticket, vague.ticket.id)
        assert triaged is not None and triaged.queue == "triage"
        ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                 TicketEvent.kind == "user_message")).one()
        assert ev.detail["classification"]["category"] == "account_security" and ev.detail["locale"] == "ko"
        assert any(k.startswith("account_security:") for k in ev.detail["classification"]["keywords"])


def test_a_later_alert_attaches_and_raises_priority_and_reroutes(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        t = _open(s, category="trading", priority="P4", ref="a1")
        assert t.queue == "trading"
        # P4 first response "1d" is 24 working hours: from 08:00 Tuesday (calendar 08-20 UTC)
        # to 20:00 Wednesday
        assert _aware(t.first_response_due) == datetime(2026, 3, 11, 20, 0, tzinfo=UTC)
        same = _open(s, category="trading", priority="P1", ref="a2", queue="security-leads")
        assert same.id == t.id and same.priority == "P1" and same.queue == "security-leads"
        assert _aware(same.first_response_due) == NOW + timedelta(minutes=15)
        _open(s, category="trading", priority="P3", ref="a2")  # a replay adds nothing
    with sessions() as s:
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                           .order_by(TicketEvent.id))]
    assert kinds == ["opened", "alert", "priority_raised", "alert"]


def test_an_unknown_queue_from_a_rule_falls_back_to_routing_and_says_so(sessions: sessionmaker[Session]
                                                                        ) -> None:
    with sessions.begin() as s:
        t = _open(s, account="V1", queue="no-such-queue")
        assert t.queue == "security-vip"
        opened = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                     TicketEvent.kind == "opened")).one()
        assert "queue 'no-such-queue' is not in the ticket policy" in opened.detail["routed_by"]


def test_staff_actions_follow_the_lifecycle(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        tid = _open(s).id
    with sessions.begin() as s:
        t = assign(s, tid, "kim", now=NOW + timedelta(minutes=5), actor="staff:lee", queue="security-leads")
        assert (t.status, t.assignee, t.queue) == ("open", "kim", "security-leads")
        assert _aware(t.first_response_at) == NOW + timedelta(minutes=5)
    with sessions.begin() as s, pytest.raises(TicketError, match="unknown queue 'secrity'; did you mean"):
        assign(s, tid, "kim", now=NOW, actor="staff:lee", queue="secrity")
    with sessions.begin() as s, pytest.raises(TicketError, match="resolving needs a resolution code"):
        transition(s, tid, "resolve", now=NOW, actor="staff:kim")
    with sessions.begin() as s:
        resolve(s, tid, "valuable", now=NOW + timedelta(hours=1), actor="staff:kim", note="user travelling")
    with sessions() as s:
        t2 = s.get(Ticket, tid)
        assert t2 is not None and t2.status == "resolved" and t2.open_key is None
        assert t2.resolution_code == "valuable" and t2.sla_state == "met"
    with sessions.begin() as s, pytest.raises(TicketError, match="is resolved; reopen it before assigning"):
        assign(s, tid, "lee", now=NOW, actor="staff:kim")
    with sessions.begin() as s, pytest.raises(TicketStateError, match="'resolved' cannot take 'ask_user'"):
        transition(s, tid, "ask_user", now=NOW, actor="staff:kim")
    with sessions.begin() as s, pytest.raises(TicketNotFound):
        resolve(s, "t_missing", "valuable", now=NOW, actor="staff:kim")
    with sessions.begin() as s, pytest.raises(ValueError, match="unknown resolution code"):
        resolve(s, tid, "fine", now=NOW, actor="staff:kim")
    # a new alert after resolution opens a new ticket; the old one cannot be reopened over it
    with sessions.begin() as s:
        new_id = _open(s, ref="a9").id
    assert new_id != tid
    with sessions.begin() as s, pytest.raises(TicketConflict, match=f"ticket {new_id} is already open"):
        transition(s, tid, "reopen", now=NOW, actor="staff:kim")
    with sessions.begin() as s:
        resolve(s, new_id, "false_positive", now=NOW, actor="staff:kim")
    reopened_at = NOW + timedelta(days=3)
    with sessions.begin() as s:
        assert transition(s, tid, "reopen", now=reopened_at, actor="staff:kim").status == "open"
    with sessions() as s:
        t3 = s.get(Ticket, tid)
        assert t3 is not None and t3.open_key == "K1:account_security" and t3.resolution_code is None
        assert _aware(t3.resolve_due) == reopened_at + timedelta(hours=24) and t3.sla_state == "ok"


def test_waiting_for_the_user_pauses_the_resolution_clock(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        tid = _open(s, priority="P1").id
    with sessions.begin() as s:
        transition(s, tid, "ask_user", now=NOW + timedelta(minutes=10), actor="staff:kim")
    with sessions.begin() as s:
        rep = sla_tick(s, NOW + timedelta(hours=3, minutes=30))  # would be in the warning window if running
        assert rep.warned == 0
        t = s.get(Ticket, tid)
        assert t is not None and t.sla_state == "paused"
    with sessions.begin() as s:  # the user answers two hours after being asked: the deadline moves by 2h
        t = open_or_attach(s, account_id="K1", category="account_security", priority="P3",
                           now=NOW + timedelta(hours=2, minutes=10), subject="s", kind="user_message",
                           ref_id="m1", source="text")
        assert t.status == "open"
        assert _aware(t.resolve_due) == NOW + timedelta(hours=6)
        assert _aware(t.first_response_at) == NOW + timedelta(minutes=10)


def test_sla_warning_and_breach_on_a_business_calendar(sessions: sessionmaker[Session]) -> None:
    friday_evening = datetime(2026, 3, 13, 19, 0, tzinfo=UTC)  # one business hour left (calendar 08-20 UTC)
    with sessions.begin() as s:
        t = open_or_attach(s, account_id="K1", category="api", priority="P3", now=friday_evening, subject="s",
                           kind="alert", ref_id="a1")
        assert _aware(t.first_response_due) == datetime(2026, 3, 16, 11, 0, tzinfo=UTC)  # Monday, 3h in
    with sessions.begin() as s:  # all weekend: nothing, the clock is stopped
        assert sla_tick(s, datetime(2026, 3, 15, 23, 0, tzinfo=UTC)).warned == 0
    with sessions.begin() as s:
        assert sla_tick(s, datetime(2026, 3, 16, 10, 15, tzinfo=UTC)).warned == 1  # 45 business min left
    with sessions.begin() as s:
        rep = sla_tick(s, datetime(2026, 3, 16, 11, 0, tzinfo=UTC))
        assert rep.breached == 1 and rep.escalation_steps == 1
        rows = list(s.scalars(select(OutboxRow).where(OutboxRow.channel == "escalate")))
    assert {(o.purpose, o.payload["target"]) for o in rows} == {("sla_warning", "api-support"),
                                                                ("sla_breach", "api-support")}


def test_a_policy_on_the_session_replaces_the_shipped_one(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(DEFAULT_POLICY.read_text().replace("P1: {first_response: 15m", "P1: {first_response: 5m"))
    sessions = session_factory(engine)
    sessions.configure(info={"ticket_policy": load_policy(f)})
    with sessions.begin() as s:
        t = open_or_attach(s, account_id="Z", category="api", priority="P1", now=NOW, subject="s",
                           kind="alert", ref_id="a")
        assert _aware(t.first_response_due) == NOW + timedelta(minutes=5)


def test_lists_filter_paginate_and_show_the_timeline(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for i, (cat, prio) in enumerate([("account_security", "P1"), ("trading", "P4"), ("api", "P3"),
                                         ("deposit_withdrawal", "P2")]):
            _open(s, account=f"A{i}", category=cat, priority=prio, ref=f"r{i}")
        _open(s, account="V1", category="trading", priority="P3", ref="r9")
    with sessions() as s:
        page1 = list_tickets(s, TicketFilter(), per_page=2)
        assert page1.total == 5 and page1.pages == 3 and [t["priority"] for t in page1.items] == ["P1", "P2"]
        page3 = list_tickets(s, TicketFilter(), page=3, per_page=2)
        assert len(page3.items) == 1 and page3.as_dict()["next_page"] is None
        two = list_tickets(s, TicketFilter(queue=["cs-zh", "api"])).items
        assert [t["queue"] for t in two] == ["api", "cs-zh"]
        assert list_tickets(s, TicketFilter(priority=["P3", "P4"], status=["new"])).total == 3
        assert list_tickets(s, TicketFilter(sla=["breached"])).total == 0
        assert list_tickets(s, TicketFilter(assignee="none", active=True)).total == 5
        with pytest.raises(FilterError, match="status: unknown value"):
            list_tickets(s, TicketFilter(status=["opne"]))
        with pytest.raises(FilterError, match="per_page: must be between 1 and 200"):
            list_tickets(s, TicketFilter(), per_page=1000)
        tid = page1.items[0]["id"]
        shown = show_ticket(s, tid)
        assert shown is not None and [e["kind"] for e in shown["timeline"]] == ["opened", "alert"]
        assert show_ticket(s, "nope") is None
