"""Twilio webhooks through the real FastAPI app and the real twilio RequestValidator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from alerts.store.models import AccountRow, AlertEvent, AlertRow, OutboxRow, Ticket
from alerts.tokens import csrf_for
from tests.delivery.kit import T0, account, alert, channels, outbox
from tickets.surveys import ticket_ref
from vigil.bootstrap import App
from vigil.web import twilio_hooks
from vigil.web.app import create_app

PUBLIC = "https://alerts.exchange.example"
TOKEN = "twilio-auth-token-0123456789abcdef"
SHARED = "shared-key-secret-abcdef0123456789"
PHONE = "+821055550001"


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    app.settings.web.twilio = twilio_hooks.TwilioHookSettings(
        public_url=PUBLIC, auth_token=SecretStr(TOKEN), shared_key=SecretStr(SHARED), receipt_wait_seconds=30)
    api = create_app(app)  # mounts the Twilio routes with the settings above
    with TestClient(api) as c:  # posts to http://testserver: the signature is over the PUBLIC URL
        yield c


def post(client: TestClient, path: str, params: dict[str, str], *, secret: str = TOKEN,
         url: str | None = None, tamper: dict[str, str] | None = None, headers: dict[str, str] | None = None,
         algorithm: str | None = None) -> Any:
    sig = RequestValidator(secret).compute_signature(url or PUBLIC + path, params, algorithm=algorithm)
    body = {**params, **(tamper or {})}
    return client.post(path, data=body, headers={"X-Twilio-Signature": sig, **(headers or {})})


def inbound(client: TestClient, body: str, *, sid: str = "SMin0001", sender: str = PHONE, **kw: Any) -> Any:
    params = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
              "To": "+15017122661", "Body": body, "NumMedia": "0", "NumSegments": "1",
              "SmsStatus": "received", "ApiVersion": "2010-04-01", "FromCountry": "KR"}
    return post(client, twilio_hooks.INBOUND_PATH, params, **kw)


def status(client: TestClient, sid: str, st: str, code: str | None = None, **kw: Any) -> Any:
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": st, "SmsStatus": st,
              "AccountSid": "AC" + "0" * 32, "From": "+15017122661", "To": PHONE, "ApiVersion": "2010-04-01"}
    if code:
        params["ErrorCode"] = code
    return post(client, twilio_hooks.STATUS_PATH, params, **kw)


@pytest.fixture
def sent(app: App, deliverer_factory: Any) -> dict[str, Any]:
    """An SMS alert (code 4821, fallback to email) delivered to the provider."""
    with app.sessions.begin() as s:
        account(s, phone=PHONE, locale="en")
        a = alert(s, channels=["sms", "email"], strategy="fallback", sms_code="4821")
    chans = channels()
    rep = deliverer_factory(chans).run_once(T0)
    with app.sessions() as s:
        row = outbox(s, alert_id=a.id, channel="sms")[0]
    return {"alert": a.id, "sid": row.provider_id, "outbox": row.id, "links": rep.links}


def _alert(app: App, aid: str) -> AlertRow:
    with app.sessions() as s:
        row = s.get(AlertRow, aid)
        assert row is not None
        return row


def _count(app: App, model: Any, *where: Any) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


# -- signatures ---------------------------------------------------------------------------------
def test_signed_status_callback_is_applied(client: TestClient, app: App, sent: dict) -> None:
    r = status(client, sent["sid"], "delivered")
    assert r.status_code == 204
    with app.sessions() as s:
        assert s.get(OutboxRow, sent["outbox"]).status == "delivered"  # type: ignore[union-attr]


def test_bad_signatures_are_refused_and_change_nothing(client: TestClient, app: App, sent: dict) -> None:
    attempts = {
        # signed as "delivered", the body says "undelivered"
        "tampered": lambda: status(client, sent["sid"], "delivered",
                                   tamper={"MessageStatus": "undelivered", "ErrorCode": "30005"}),
        "missing": lambda: client.post(twilio_hooks.STATUS_PATH,
                                       data={"MessageSid": sent["sid"], "MessageStatus": "undelivered"}),
        # what a validator trusting the Host header would have checked
        "wrong_url": lambda: status(client, sent["sid"], "undelivered", "30005",
                                    url="http://testserver" + twilio_hooks.STATUS_PATH),
        "wrong_token": lambda: status(client, sent["sid"], "undelivered", "30005", secret="not-the-token"),
        # claims shared-key HMAC-SHA256 but is signed with the auth token
        "sha256_without_key": lambda: status(client, sent["sid"], "undelivered", "30005", headers={
            "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}),
        "inbound_tampered": lambda: inbound(client, "Y 4821", tamper={"Body": "N 4821"}),
    }
    for how, attempt in attempts.items():
        assert attempt().status_code == 403, how
    with app.sessions() as s:
        assert s.get(OutboxRow, sent["outbox"]).status == "sent"  # type: ignore[union-attr]
        acct = s.get(AccountRow, "A1")
        assert acct is not None and acct.phone_bad is False and acct.status == "active"
    assert _alert(app, sent["alert"]).status == "notified"


def test_shared_key_hmac_sha256_signature_is_accepted(client: TestClient, app: App, sent: dict) -> None:
    r = status(client, sent["sid"], "delivered", secret=SHARED, algorithm="HMAC_SHA256", headers={
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"})
    assert r.status_code == 204
    with app.sessions() as s:
        assert s.get(OutboxRow, sent["outbox"]).status == "delivered"  # type: ignore[union-attr]


def test_auth_token_defaults_to_the_sms_channel_setting(db_url: str, clock: Any, rule_set: Any) -> None:
    from tests.delivery.conftest import make_test_app

    app = make_test_app(db_url, clock, rule_set, channels={"sms": {"auth_token": TOKEN}})
    try:
        app.settings.web.twilio = twilio_hooks.TwilioHookSettings(public_url=PUBLIC, receipt_wait_seconds=0)
        api = create_app(app)
        with TestClient(api) as c:
            assert status(c, "SMunknown", "delivered").status_code == 204
            assert status(c, "SMunknown", "delivered", secret="other").status_code == 403
    finally:
        app.close()


def test_a_receipt_that_overtakes_the_recording_of_its_message_waits_for_it(
        client: TestClient, app: App, sent: dict) -> None:
    """The provider's callback arrives before the worker committed the message id."""
    import logging
    import threading

    from sqlalchemy import update

    with app.sessions.begin() as s:  # as if the worker had not recorded the id yet
        s.execute(update(OutboxRow).where(OutboxRow.id == sent["outbox"]).values(provider_id=None))
    missed = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "unknown message" in record.getMessage():
                missed.set()

    def worker_records_the_id() -> None:
        assert missed.wait(30)  # the receipt looked once and did not find its message
        with app.sessions.begin() as s:
            s.execute(update(OutboxRow).where(OutboxRow.id == sent["outbox"]).values(provider_id=sent["sid"]))

    log = logging.getLogger("delivery.receipts")
    handler, level = Seen(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    t = threading.Thread(target=worker_records_the_id)
    t.start()
    try:
        assert status(client, sent["sid"], "delivered").status_code == 204
    finally:
        t.join()
        log.removeHandler(handler)
        log.setLevel(level)
    with app.sessions() as s:
        assert s.get(OutboxRow, sent["outbox"]).status == "delivered"  # type: ignore[union-attr]


def test_replayed_undelivered_callback_falls_back_once(client: TestClient, app: App, sent: dict) -> None:
    for _ in range(3):
        assert status(client, sent["sid"], "undelivered", "30005").status_code == 204
    with app.sessions() as s:
        assert [r.status for r in outbox(s, alert_id=sent["alert"], channel="email")] == ["pending"]
        assert s.get(AccountRow, "A1").phone_bad is True  # type: ignore[union-attr]


# -- inbound answers ----------------------------------------------------------------------------
def test_n_with_the_code_freezes_once_and_a_replay_changes_nothing(client: TestClient, app: App,
                                                                   sent: dict[str, Any]) -> None:
    r = inbound(client, "N 4821")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "<Message>Vigil: your account is now frozen" in r.text
    again = inbound(client, "N 4821")  # the same signed request, replayed
    assert again.status_code == 200 and "<Message>" not in again.text
    assert _alert(app, sent["alert"]).status == "denied"
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]
    assert _count(app, Ticket, Ticket.priority == "P1") == 1
    assert _count(app, AlertEvent, AlertEvent.event == "answer_deny") == 1
    assert _count(app, OutboxRow, OutboxRow.channel == "freeze_hook") == 1


def test_not_me_by_link_and_by_sms_freezes_once_and_opens_one_ticket(client: TestClient, app: App,
                                                                     sent: dict[str, Any]) -> None:
    (_, _, link), = [x for x in sent["links"] if x[1] == "sms"]
    token = link.rsplit("/", 1)[1]
    path = f"/c/{token}"
    assert client.get(path).status_code == 200  # a mail scanner's GET changes nothing
    assert _alert(app, sent["alert"]).status == "notified"
    secret = app.settings.web.secret_key.get_secret_value()
    r = client.post(path, data={"answer": "deny", "csrf": csrf_for(secret, token)})
    assert r.status_code == 200
    r = inbound(client, "n4821", sid="SMin0002")
    assert "frozen" in r.text
    assert _count(app, Ticket) == 1 and _count(app, OutboxRow, OutboxRow.channel == "freeze_hook") == 1
    assert _count(app, AlertEvent, AlertEvent.event == "answer_repeated") == 1


def test_y_with_the_code_confirms_and_a_later_n_still_wins(client: TestClient, app: App,
                                                          sent: dict[str, Any]) -> None:
    assert "we noted that this was you" in inbound(client, "Y 4821").text
    assert _alert(app, sent["alert"]).status == "confirmed"
    assert "frozen" in inbound(client, "N 4821", sid="SMin0002").text
    assert _alert(app, sent["alert"]).status == "denied"


def test_a_bare_yes_or_no_is_not_an_answer(client: TestClient, app: App, sent: dict) -> None:
    for i, body in enumerate(["YES", "Yes", "Y", "N", "NO", " y "]):
        r = inbound(client, body, sid=f"SMbare{i}")
        assert "reply Y or N followed by the code" in r.text, body
    assert _alert(app, sent["alert"]).status == "notified"


def test_stop_and_start_set_the_opt_out_flag(client: TestClient, app: App, sent: dict) -> None:
    r = inbound(client, "STOP")
    assert r.status_code == 200 and "<Message>" not in r.text  # Twilio answers STOP itself
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").sms_opt_out is True  # type: ignore[union-attr]
    inbound(client, "start", sid="SMin0002")
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").sms_opt_out is False  # type: ignore[union-attr]


def test_the_code_from_another_number_does_nothing(client: TestClient, app: App, sent: dict) -> None:
    r = inbound(client, "N 4821", sender="+821099999999")
    assert "not valid" in r.text
    assert _alert(app, sent["alert"]).status == "notified"


def test_wrong_codes_lock_out_y_and_wrong_codes_but_never_a_correct_n(client: TestClient, app: App,
                                                                      sent: dict) -> None:
    for i in range(5):
        assert "not valid" in inbound(client, f"N {1000 + i}", sid=f"SMbad{i}").text
    inbound(client, f"N {1000}", sid="SMbad0")  # a replayed wrong code is not counted twice
    assert _count(app, AlertEvent, AlertEvent.event == "sms_bad_code") == 5
    assert "too many wrong codes" in inbound(client, "Y 4821", sid="SMyes").text
    assert "too many wrong codes" in inbound(client, "N 9999", sid="SMwrong").text
    assert _alert(app, sent["alert"]).status == "notified"
    r = inbound(client, "N 4821", sid="SMright")  # freezing is the safe direction: never locked out
    assert "frozen" in r.text
    assert _alert(app, sent["alert"]).status == "denied"
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]


def test_expired_code_y_refused_n_accepted_within_grace(client: TestClient, app: App, clock: Any,
                                                       sent: dict[str, Any]) -> None:
    clock.now = T0 + timedelta(minutes=31)
    assert "not valid" in inbound(client, "Y 4821").text
    assert _alert(app, sent["alert"]).status == "notified"
    clock.now = T0 + timedelta(hours=7)  # past the 6 h grace for "not me"
    assert "not valid" in inbound(client, "N 4821", sid="SMlate").text
    clock.now = T0 + timedelta(hours=2)
    assert "frozen" in inbound(client, "N 4821", sid="SMgrace").text


def test_full_width_reply_in_japanese(client: TestClient, app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s, "J1", phone="+819012345678", locale="ja")
        a = alert(s, 7, account_id="J1", sms_code="7350")
    deliverer_factory(channels()).run_once(T0)
    r = inbound(client, "Ｎ　７３５０", sender="+819012345678")
    assert "アカウントを凍結しました" in r.text
    assert _alert(app, a.id).status == "denied"


def test_free_text_from_a_registered_number_opens_a_classified_ticket(app: App, client: TestClient) -> None:
    with app.sessions.begin() as s:
        account(s, phone=PHONE, locale="ko")
    r = inbound(client, "제 계정에서 모르는 출금이 발생했어요 도와주세요", sid="SMfree0001")
    assert r.status_code == 200 and "메시지를 받았습니다" in r.text  # acknowledged in Korean, with the reference
    again = inbound(client, "제 계정에서 모르는 출금이 발생했어요 도와주세요", sid="SMfree0001")  # replayed
    assert again.status_code == 200
    with app.sessions() as s:
        tickets = s.scalars(select(Ticket).where(Ticket.account_id == "A1")).all()
    assert len(tickets) == 1
    assert tickets[0].category in ("deposit_withdrawal", "account_security")
    assert tickets[0].classifier_confidence is not None
    assert ticket_ref(tickets[0].id) in r.text
    stranger = inbound(client, "please help me with my account", sid="SMfree0002", sender="+19995550000")
    assert stranger.status_code == 200
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1  # unknown numbers open nothing
