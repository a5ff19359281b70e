"""Satisfaction surveys end to end: resolving a ticket queues a survey on the ticket's channel, in
the holder's language, through the real outbox and renderer; it is answered once, by link or SMS
reply; opt-out and frozen accounts are respected; results group by queue, category and agent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.accounts import AccountError, unfreeze_account
from alerts.actions import freeze_account
from alerts.store.models import AccountRow, Survey, Ticket
from delivery.deliver import Deliverer
from tests.app.helpers import Clock, make_app
from tests.delivery.kit import channels, render
from tickets.core import open_from_text, resolve
from tickets.surveys import release_held, results, ticket_ref
from vigil.web.app import create_app
from vigil.web.hook_settings import TwilioHookSettings
from vigil.web.twilio_hooks import handle_inbound


@pytest.fixture
def app(db_url: str) -> Any:
    a = make_app(db_url, clock=Clock())
    with a.sessions.begin() as s:
        s.add(AccountRow(account_id="K1", locale="ko", phone="+821055500001", email="k1@example.com",
                         push_token="tok-k1", status="active"))
        s.add(AccountRow(account_id="E1", locale="en", phone="+15555550001", email="e1@example.com",
                         status="active"))
    yield a
    a.close()


def _ticket(app: Any, account: str, text: str, channel: str) -> str:
    with app.sessions.begin() as s:
        got = open_from_text(s, account, text, None, app.clock(), channel=channel, ref_id=f"m-{account}")
        return str(got.ticket.id)


def _resolve(app: Any, ticket_id: str, who: str = "staff:kim") -> None:
    with app.sessions.begin() as s:
        t = s.get(Ticket, ticket_id)
        t.assignee = who.removeprefix("staff:")  # type: ignore[union-attr]
        resolve(s, ticket_id, "valuable", now=app.clock(), actor=who)


def _deliver(app: Any) -> dict[str, Any]:
    chans = channels()
    Deliverer(app.sessions, app.settings, chans, render).run_once(app.clock())
    return chans


def test_an_sms_ticket_gets_its_survey_by_sms_in_korean_and_a_reply_answers_it(app: Any) -> None:
    tid = _ticket(app, "K1", "출금이 아직 안 들어왔어요. 확인 부탁드립니다.", "sms")
    _resolve(app, tid)
    sent = _deliver(app)["sms"].sent
    survey_msgs = [m for m in sent if ticket_ref(tid) in m.text]
    assert len(survey_msgs) == 1
    text = survey_msgs[0].text
    assert "평가" in text or "답장" in text, text  # Korean wording
    assert "http" not in text  # SMS surveys are answered by reply, never a link
    with app.sessions() as s:
        sv = s.scalars(select(Survey).where(Survey.ticket_id == tid)).one()
        assert sv.channel == "sms" and sv.locale == "ko" and sv.sms_code and sv.sms_code in text
        code = sv.sms_code
    with app.sessions.begin() as s:
        reply = handle_inbound(s, {"From": "+821055500001", "Body": f"4 {code} 빨리 해결해 주셔서 감사합니다",
                                   "MessageSid": "SM1"}, now=app.clock(), cfg=TwilioHookSettings())
    assert reply and "감사" in reply
    with app.sessions() as s:
        sv = s.scalars(select(Survey).where(Survey.ticket_id == tid)).one()
        assert (sv.status, sv.score) == ("answered", 4) and "감사" in (sv.comment or "")
        by_agent = results(s, "agent")
    assert by_agent == [{"agent": "kim", "asked": 1, "answered": 1, "response_rate": 1.0, "mean_score": 4.0,
                         "satisfied": 1.0, "unhappy": 0.0}]


def test_an_email_survey_link_answers_once_and_a_furious_comment_reopens_the_ticket(app: Any) -> None:
    tid = _ticket(app, "E1", "Where is my deposit from this morning?", "email")
    _resolve(app, tid)
    mail = [m for m in _deliver(app)["email"].sent if ticket_ref(tid) in m.text]
    assert len(mail) == 1
    link = re.search(r"https?://\S+/s/\S+", mail[0].text)
    assert link, mail[0].text
    path = "/s/" + link.group(0).rsplit("/s/", 1)[1]
    with app.sessions() as s:
        before = s.get(Ticket, tid).priority  # type: ignore[union-attr]
    client = TestClient(create_app(app))
    page = client.get(path)
    assert page.status_code == 200 and 'name="score"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post(path, data={"score": "1", "comment": "x", "csrf": "forged"}).status_code == 400
    furious = "Useless. My money is still gone, I am calling my lawyer and the police."
    done = client.post(path, data={"score": "1", "csrf": csrf, "comment": furious})
    assert done.status_code == 200 and ticket_ref(tid) in done.text  # reopened, with its reference
    assert client.post(path, data={"score": "5", "csrf": csrf}).status_code == 410  # single use
    assert client.get(path).status_code == 410
    with app.sessions() as s:
        t = s.get(Ticket, tid)
        assert t is not None and t.status == "open" and t.sentiment_flag and t.sentiment_flag.startswith("keyword:")
        order = ["P1", "P2", "P3", "P4"]
        assert order.index(t.priority) == order.index(before) - 1


def test_opted_out_and_frozen_accounts_get_no_survey_until_unfrozen(app: Any) -> None:
    with app.sessions.begin() as s:
        s.get(AccountRow, "E1").survey_opt_out = True  # type: ignore[union-attr]
        freeze_account(s, "K1", now=app.clock(), reason="test")
    t_e = _ticket(app, "E1", "Please check my withdrawal status", "email")
    t_k = _ticket(app, "K1", "출금 상태를 확인해 주세요", "sms")
    _resolve(app, t_e)
    _resolve(app, t_k)
    sent = _deliver(app)
    assert not any(ticket_ref(t_e) in m.text or ticket_ref(t_k) in m.text for ch in sent.values() for m in ch.sent)
    with app.sessions() as s:
        got = {sv.ticket_id: (sv.status, sv.reason) for sv in s.scalars(select(Survey))}
    assert got == {t_e: ("skipped", "opted_out"), t_k: ("held", "account_frozen")}
    with app.sessions.begin() as s:
        assert release_held(s, now=app.clock()) == 0  # still frozen
        assert unfreeze_account(s, "K1", now=app.clock(), reason="holder verified by phone", actor="staff:lee")
        assert release_held(s, now=app.clock()) == 1
    assert any(ticket_ref(t_k) in m.text for m in _deliver(app)["sms"].sent)


def test_unfreezing_needs_a_reason(app: Any) -> None:
    with app.sessions.begin() as s:
        freeze_account(s, "K1", now=app.clock(), reason="test")
        with pytest.raises(AccountError, match="reason"):
            unfreeze_account(s, "K1", now=app.clock(), reason=" ", actor="staff:lee")


def test_report_prints_survey_results(app: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vigil.cli import main

    tid = _ticket(app, "E1", "Please check my withdrawal status", "email")
    _resolve(app, tid, who="staff:park")
    cfg = tmp_path / "v.yaml"
    cfg.write_text(f"database_url: {app.settings.database_url}\n")
    out = CliRunner().invoke(main, ["--config", str(cfg), "report"])
    assert out.exit_code == 0, out.output
    assert "satisfaction surveys" in out.output and "park" in out.output
