"""The SMS channel on the real twilio SDK: a recording HttpClient, and the real transport on loopback."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from notifiers.sms import SmsChannel, SmsConfig, result_from_callback, status_rank
from tests.notifiers.notify_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    TO,
    LoopbackHTTP,
    Reply,
    message,
    recording_twilio_client,
    twilio_error_json,
    twilio_message_json,
)

CALLBACK = "https://alerts.exchange.example/twilio/status"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def config(**kw: Any) -> SmsConfig:
    base: dict[str, Any] = {
        "enabled": True,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": FROM,
        "status_callback_url": CALLBACK,
    }
    base.update(kw)
    return SmsConfig(**base)


def channel(script: list[tuple[int, Any]], **kw: Any) -> tuple[SmsChannel, Any]:
    client = recording_twilio_client(script)
    return SmsChannel(config(**kw), http_client=client), client


def test_send_posts_the_message_with_status_callback_and_basic_auth() -> None:
    ch, http = channel([(201, twilio_message_json("SM" + "1" * 32))])
    result = ch.send(message("sms", text="Vigil: new sign-in. Not you? Reply N 4821"))
    assert result.status == "sent" and result.provider_id == "SM" + "1" * 32 and result.ok
    [call] = http.calls
    assert call["method"] == "POST" and call["url"] == MESSAGES_URL
    assert call["auth"] == (ACCOUNT_SID, AUTH_TOKEN)
    assert call["data"] == {
        "To": TO,
        "From": FROM,
        "Body": "Vigil: new sign-in. Not you? Reply N 4821",
        "StatusCallback": CALLBACK,
    }


def test_messaging_service_and_api_key_and_validity_period() -> None:
    mg, sk = "MG" + "ab" * 16, "SK" + "cd" * 16
    ch, http = channel(
        [(201, twilio_message_json())],
        from_number=None,
        messaging_service_sid=mg,
        auth_token=None,
        api_key_sid=sk,
        api_key_secret="key-secret",
        validity_period=600,
    )
    assert ch.send(message("sms")).status == "sent"
    [call] = http.calls
    assert call["auth"] == (sk, "key-secret") and call["url"] == MESSAGES_URL
    assert call["data"]["MessagingServiceSid"] == mg and "From" not in call["data"]
    assert call["data"]["ValidityPeriod"] == 600


# notify-anchors §1.6, written out here rather than read from the table under test
SYNC_ERRORS = [
    (21610, 400, "permanent", "opt_out", None),
    (21211, 400, "permanent", "bad_address", None),
    (21614, 400, "permanent", "bad_address", None),
    (21612, 400, "permanent", "bad_address", None),
    (21635, 400, "permanent", "bad_address", None),
    (21608, 400, "permanent", "ops_alert", None),
    (20003, 401, "permanent", "ops_alert", None),
    (20429, 429, "transient", "backoff", None),
    (21999, 400, "permanent", None, None),  # a code the table does not know: a 4xx is permanent
    (20500, 500, "transient", None, None),  # a server error is transient
]


@pytest.mark.parametrize(("code", "http", "status", "action", "retries"), SYNC_ERRORS)
def test_synchronous_errors_map_to_status_and_action(
    code: int, http: int, status: str, action: str | None, retries: int | None
) -> None:
    ch, _ = channel([(http, twilio_error_json(code, http, "nope"))])
    result = ch.send(message("sms"))
    assert (result.status, result.action, result.max_retries) == (status, action, retries)
    assert result.error_code == str(code) and "nope" in (result.error or "")


def test_rfc9457_problem_details_are_mapped_too() -> None:
    body = {
        "type": "https://www.twilio.com/docs/errors/21610",
        "title": "Unsubscribed recipient",
        "status": 400,
        "code": 21610,
        "detail": "replied STOP",
    }
    ch, _ = channel([(400, body)])
    result = ch.send(message("sms"))
    assert (result.status, result.action, result.error_code) == ("permanent", "opt_out", "21610")


def test_a_body_that_is_not_json_is_still_a_result() -> None:
    ch, _ = channel([(502, "<html>bad gateway</html>"), (400, "plain text")])
    assert ch.send(message("sms")).status == "transient"
    assert ch.send(message("sms")).status == "permanent"


def test_nothing_is_requested_without_a_usable_number_or_within_budget() -> None:
    ch, http = channel([])
    assert ch.send(message("sms", phone=None)).status == "skipped"
    bad = ch.send(message("sms", phone="5558675310"))
    assert (bad.status, bad.action) == ("permanent", "bad_address")
    long = ch.send(message("sms", text="中" * 135))  # 3 UCS-2 segments, budget 2
    assert long.status == "permanent" and "3 UCS-2 segments" in (long.error or "")
    assert http.calls == []


def test_real_transport_on_loopback_sends_form_and_auth(http_server: LoopbackHTTP) -> None:
    http_server.route("/2010-04-01/", Reply(201, twilio_message_json("SM" + "2" * 32)))
    ch = SmsChannel(config(base_url=http_server.url))
    result = ch.send(message("sms", text="Vigil: Ünïcode ok? Reply N 4821"))
    ch.close()
    assert result.status == "sent" and result.provider_id == "SM" + "2" * 32
    [req] = http_server.requests
    assert req.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert (
        req.headers["authorization"]
        == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    )
    form = parse_qs(req.body.decode())
    assert form["Body"] == ["Vigil: Ünïcode ok? Reply N 4821"] and form["To"] == [TO]


def test_an_unreachable_api_is_transient_never_an_exception(closed_port: int) -> None:
    ch = SmsChannel(config(base_url=f"http://127.0.0.1:{closed_port}", timeout=5))
    result = ch.send(message("sms"))
    assert result.status == "transient" and "unreachable" in (result.error or "")


# -- status callbacks (asynchronous 30xxx codes) ----------------------------------------------------
CALLBACKS = [
    ({"MessageStatus": "queued"}, "sent", None, None),
    ({"MessageStatus": "sent"}, "sent", None, None),
    ({"MessageStatus": "delivered"}, "delivered", None, None),
    ({"MessageStatus": "read"}, "delivered", None, None),
    ({"MessageStatus": "undelivered", "ErrorCode": "30003"}, "transient", None, 1),
    ({"MessageStatus": "undelivered", "ErrorCode": "30008"}, "transient", None, 1),
    ({"MessageStatus": "failed", "ErrorCode": "30001"}, "transient", "backoff", None),
    ({"MessageStatus": "failed", "ErrorCode": "30002"}, "permanent", "ops_alert", None),
    ({"MessageStatus": "undelivered", "ErrorCode": "30004"}, "permanent", None, None),
    ({"MessageStatus": "undelivered", "ErrorCode": "30005"}, "permanent", "bad_address", None),
    ({"MessageStatus": "undelivered", "ErrorCode": "30006"}, "permanent", "bad_address", None),
    ({"MessageStatus": "undelivered", "ErrorCode": "30007"}, "permanent", "ops_alert", None),
    ({"MessageStatus": "failed"}, "permanent", None, None),
    ({"MessageStatus": "canceled"}, "permanent", None, None),
    ({"SmsStatus": "delivered"}, "delivered", None, None),  # legacy parameter names
]


@pytest.mark.parametrize(("params", "status", "action", "retries"), CALLBACKS)
def test_status_callbacks(
    params: dict[str, str], status: str, action: str | None, retries: int | None
) -> None:
    full = {
        "MessageSid": "SM" + "3" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": FROM,
        "To": TO,
        "ApiVersion": "2010-04-01",
        "SomeNewField": "ignored",
        **params,
    }
    result = result_from_callback(full)
    assert (result.status, result.action, result.max_retries) == (status, action, retries)
    assert result.provider_id == "SM" + "3" * 32


def test_status_rank_orders_out_of_order_callbacks() -> None:
    assert status_rank("queued") < status_rank("sent") < status_rank("delivered") < status_rank("read")
    assert status_rank("undelivered") > status_rank("sent") and status_rank("whatever") == -1


# -- configuration ---------------------------------------------------------------------------------
def test_config_is_checked_at_load_and_keeps_secrets_secret() -> None:
    with pytest.raises(ValidationError, match="needs account_sid"):
        SmsConfig.model_validate(dict(enabled=True, auth_token="x", from_number=FROM))
    with pytest.raises(ValidationError, match="exactly one of from_number and messaging_service_sid"):
        SmsConfig.model_validate(dict(enabled=True, account_sid=ACCOUNT_SID, auth_token="x"))
    with pytest.raises(ValidationError, match="'AC' followed by 32 hex digits"):
        SmsConfig(account_sid="AC123")
    with pytest.raises(ValidationError, match=r"E\.164"):
        SmsConfig(from_number="+0123")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SmsConfig.model_validate(dict(auth_tokn="x"))
    assert SmsConfig().enabled is False  # a disabled channel needs nothing
    cfg = config()
    assert AUTH_TOKEN not in repr(cfg) and AUTH_TOKEN not in str(cfg.model_dump())
    assert AUTH_TOKEN not in str(SmsChannel(cfg, http_client=recording_twilio_client([])).describe())
