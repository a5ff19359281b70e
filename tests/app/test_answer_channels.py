"""An attacker who holds one channel cannot silence an alert (SQLite and PostgreSQL).

Through the real scan, store and answer paths: "it was me" from a channel that cannot confirm is
recorded and the alert still escalates; "not me" wins after an "it was me"; after a phone or
email change in ``security_events`` the previous contact gets a copy and may say "not me", while
the new contact cannot confirm.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.answers import answer
from alerts.store.models import AccountRow, AlertEvent, AlertRow, ContactChange, OutboxRow, Ticket
from delivery.escalate import escalate_once
from tests.app.helpers import T0, Clock, iso, make_app, small_dir, write_csv
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir
from vigil.web.hook_settings import TwilioHookSettings
from vigil.web.twilio_hooks import handle_inbound

OLD_PHONE, NEW_PHONE = "+82105550000", "+821099990000"  # small_dir's A1, the attacker's


@pytest.fixture
def scanned(db_url: str, tmp_path: Path) -> Any:
    clock = Clock()
    app = make_app(db_url, clock)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    yield app
    app.close()


def _alert(app: Any, rule: str = "login-new-country") -> AlertRow:
    with app.sessions() as s:
        return s.scalars(select(AlertRow).where(AlertRow.rule_id == rule)).one()


def _count(app: Any, model: Any, *where: Any) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _status(app: Any, account: str = "A1") -> str:
    with app.sessions() as s:
        return s.get(AccountRow, account).status  # type: ignore[union-attr]


def test_email_confirm_on_a_high_alert_is_recorded_and_the_alert_still_escalates(scanned: Any) -> None:
    app = scanned
    a = _alert(app)
    with app.sessions.begin() as s:
        res = answer(s, a.id, "confirm", channel="link:email", now=app.clock())
    assert (res.applied, res.outcome, res.status) == (False, "unverified", "new")
    assert _count(app, AlertEvent, AlertEvent.event == "answer_confirm_unverified") == 1
    app.clock.now = a.expires_at + timedelta(minutes=1)  # the reminder
    escalate_once(app.sessions, now=app.clock())
    app.clock.advance(hours=1)  # no answer from a confirming channel: expired, on_expired ran
    escalate_once(app.sessions, now=app.clock())
    assert _alert(app).status in ("expired", "escalated")
    assert _count(app, Ticket, Ticket.account_id == "A1") >= 1
    with app.sessions.begin() as s:  # "not me" is still heard after the expiry
        assert answer(s, a.id, "deny", channel="link:sms", now=app.clock()).status == "denied"
    assert _status(app) == "frozen"


def test_confirm_by_push_then_deny_by_email_freezes_once(scanned: Any) -> None:
    app = scanned
    a = _alert(app)
    with app.sessions.begin() as s:
        assert answer(s, a.id, "confirm", channel="push:push", now=app.clock()).outcome == "confirm"
    assert _alert(app).status == "confirmed" and _status(app) == "active"
    app.clock.advance(minutes=10)
    for label in ("link:email", "sms", "link:email"):
        with app.sessions.begin() as s:
            answer(s, a.id, "deny", channel=label, now=app.clock())
    assert _alert(app).status == "denied" and _status(app) == "frozen"
    assert _count(app, OutboxRow, OutboxRow.channel == "freeze_hook") == 1
    with app.sessions() as s:
        p1 = s.scalars(select(Ticket).where(Ticket.account_id == "A1", Ticket.priority == "P1")).all()
    assert len(p1) == 1


def _takeover(tmp_path: Path, *, push_token: str | None = None) -> Path:
    """Day 8: the phone number is changed, then a login from a new country."""
    d = tmp_path / "later"
    d.mkdir()
    acct = {"account_id": "A1", "locale": "ko", "timezone": "Asia/Seoul", "email": "a1@example.com",
            "phone": NEW_PHONE, "anti_phishing_code": "APC0"}
    if push_token:
        acct["push_token"] = push_token
    write_csv(d / "accounts.csv", [acct])
    write_csv(d / "security_events.csv", [{"event_id": "A1-s1", "account_id": "A1", "kind": "phone_change",
                                           "ts": iso(T0 + timedelta(days=8))}])
    write_csv(d / "logins.csv", [{"event_id": "A1-l20", "account_id": "A1", "ts": iso(T0 + timedelta(days=8, hours=1)),
                                  "success": "true", "country": "NG", "city": "Lagos", "ip": "41.1.1.1",
                                  "device_id": "evil2"}])
    return d


def test_after_a_phone_change_the_old_number_gets_a_copy_and_the_new_one_cannot_confirm(
        scanned: Any, tmp_path: Path) -> None:
    app = scanned
    app.clock.now = T0 + timedelta(days=8, hours=2)
    import_dir(app.engine, _takeover(tmp_path))
    scan_until_caught_up(app)
    with app.sessions() as s:
        change = s.scalars(select(ContactChange).where(ContactChange.kind == "phone")).one()
        assert (change.previous, change.current, change.event_id) == (OLD_PHONE, NEW_PHONE, "A1-s1")
        alert = next(a for a in s.scalars(select(AlertRow).where(AlertRow.rule_id == "login-new-country"))
                     if "A1-l20" in a.event_ids)
        assert alert.sms_code
        copies = s.scalars(select(OutboxRow).where(OutboxRow.alert_id == alert.id, OutboxRow.channel == "sms")).all()
    assert sorted(str((c.payload or {}).get("to")) for c in copies) == [OLD_PHONE, "None"]
    cfg = TwilioHookSettings()
    with app.sessions.begin() as s:  # the attacker's new number says "it was me": recorded only
        reply = handle_inbound(s, {"From": NEW_PHONE, "Body": f"Y {alert.sms_code}", "MessageSid": "SM1"},
                               now=app.clock(), cfg=cfg)
    assert reply is not None and "기록" in reply  # Korean "recorded"
    assert _status(app) == "active"
    with app.sessions.begin() as s:  # the holder's old number says "not me": frozen
        reply = handle_inbound(s, {"From": OLD_PHONE, "Body": f"N {alert.sms_code}", "MessageSid": "SM2"},
                               now=app.clock(), cfg=cfg)
    assert reply is not None and "동결" in reply
    assert _status(app) == "frozen"


def test_a_new_push_device_cannot_confirm_either(scanned: Any, tmp_path: Path) -> None:
    app = scanned
    app.clock.now = T0 + timedelta(days=8, hours=2)
    first = tmp_path / "device"
    first.mkdir()
    write_csv(first / "accounts.csv", [{"account_id": "A1", "phone": OLD_PHONE, "push_token": "old-device"}])
    write_csv(first / "logins.csv", [{"event_id": "A1-l15", "account_id": "A1", "ts": iso(T0 + timedelta(days=7)),
                                      "success": "true", "country": "KR", "city": "Seoul", "ip": "10.0.0.9"}])
    import_dir(app.engine, first)
    scan_until_caught_up(app)
    import_dir(app.engine, _takeover(tmp_path, push_token="attacker-device"))
    scan_until_caught_up(app)
    with app.sessions() as s:
        kinds = sorted(c.kind for c in s.scalars(select(ContactChange)))
        alert = next(a for a in s.scalars(select(AlertRow).where(AlertRow.rule_id == "login-new-country"))
                     if "A1-l20" in a.event_ids)
    assert kinds == ["phone", "push"]
    with app.sessions.begin() as s:
        assert answer(s, alert.id, "confirm", channel="push:push", now=app.clock()).outcome == "unverified"


def test_after_an_email_change_the_old_address_gets_a_copy_and_its_link_can_say_not_me(
        db_url: str, tmp_path: Path, smtp_server: Any) -> None:
    """End to end with a real SMTP server and the confirmation page: an attacker who changed the email
    receives the alert at the new address, but "it was me" from there is only recorded; the holder's
    old address gets a copy whose link freezes the account."""
    import re

    from fastapi.testclient import TestClient

    from vigil.daemon import deliver_once
    from vigil.web.app import create_app

    old, new = "a1@example.com", "attacker@evil.example"
    clock = Clock()
    app = make_app(db_url, clock, channels={
        "console": {"enabled": False},
        "email": {"enabled": True, "host": smtp_server.host, "port": smtp_server.port, "timeout": 5}})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    deliver_once(app)
    before = len(smtp_server.messages)
    d = tmp_path / "later"
    d.mkdir()
    write_csv(d / "accounts.csv", [{"account_id": "A1", "locale": "en", "timezone": "UTC", "email": new,
                                    "phone": OLD_PHONE, "anti_phishing_code": "APC0"}])
    write_csv(d / "security_events.csv", [{"event_id": "A1-s2", "account_id": "A1", "kind": "email_change",
                                           "ts": iso(T0 + timedelta(days=8))}])
    write_csv(d / "logins.csv", [{"event_id": "A1-l21", "account_id": "A1", "ts": iso(T0 + timedelta(days=8, hours=1)),
                                  "success": "true", "country": "NG", "city": "Lagos", "ip": "41.1.1.1",
                                  "device_id": "evil2"}])
    clock.now = T0 + timedelta(days=8, hours=2)
    import_dir(app.engine, d)
    scan_until_caught_up(app)
    with app.sessions() as s:
        change = s.scalars(select(ContactChange).where(ContactChange.kind == "email")).one()
        assert (change.previous, change.current, change.event_id) == (old, new, "A1-s2")
        alert = next(a for a in s.scalars(select(AlertRow).where(AlertRow.rule_id == "login-new-country"))
                     if "A1-l21" in a.event_ids)
    sent = deliver_once(app).sent
    mails = smtp_server.wait_for(before + sent)[before:]
    links: dict[str, str] = {}
    for m in mails:
        text = m.message.get_body(("plain",)).get_content()
        found = re.search(r"(http\S+/c/\S+)", text)
        if "Lagos" in text and found:
            links[m.rcpt_tos[0]] = found.group(1)
    assert set(links) == {old, new}, links  # the alert went to the new address and a copy to the old one
    client = TestClient(create_app(app))

    def press(link: str, what: str) -> None:
        path = "/c/" + link.split("/c/", 1)[1]
        token = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
        assert token is not None
        assert client.post(path, data={"answer": what, "csrf": token.group(1)}).status_code < 500

    press(links[new], "confirm")  # the attacker, from the address they just set
    with app.sessions() as s:
        assert s.get(AlertRow, alert.id).status not in ("confirmed", "closed")  # type: ignore[union-attr]
    assert _count(app, AlertEvent, AlertEvent.alert_id == alert.id,
                  AlertEvent.event == "answer_confirm_unverified") == 1
    assert _status(app) == "active"
    press(links[old], "deny")  # the holder, from the address the attacker replaced
    assert _status(app) == "frozen"
    with app.sessions() as s:
        assert s.get(AlertRow, alert.id).status == "denied"  # type: ignore[union-attr]
    app.close()
