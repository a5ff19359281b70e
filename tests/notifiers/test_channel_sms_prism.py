"""The SMS channel against Prism serving Twilio's published OpenAPI spec (a contract test).

Prism validates each request against the spec (required fields, types, basic auth) and answers
with the spec's example.  It cannot produce Twilio's error codes; those are covered with the
recording client in test_channel_sms.py.
"""

from __future__ import annotations

import pytest

from notifiers.sms import SmsChannel, SmsConfig
from tests.notifiers.notify_support import ACCOUNT_SID, AUTH_TOKEN, FROM, TO, message

pytestmark = pytest.mark.prism


def channel(prism_url: str) -> SmsChannel:
    cfg = SmsConfig.model_validate(
        {
            "enabled": True,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": FROM,
            "status_callback_url": "https://alerts.exchange.example/twilio/status",
            "base_url": prism_url,
            "validity_period": 900,
        }
    )
    return SmsChannel(cfg)


def test_the_request_the_channel_sends_satisfies_the_published_contract(prism_url: str) -> None:
    ch = channel(prism_url)
    result = ch.send(message("sms", text="Vigil：您的账户有新登录。不是您？回复 N 4821 冻结账户。"))
    ch.close()
    assert result.status == "sent", result.error
    assert result.provider_id and result.provider_id.startswith("SM")


def test_prism_rejects_a_request_without_to_so_the_contract_is_checked(prism_url: str) -> None:
    from twilio.base.exceptions import TwilioRestException

    ch = channel(prism_url)
    with pytest.raises(TwilioRestException) as info:
        ch.client.messages.create(to=None, from_=FROM, body="x")  # type: ignore[arg-type]
    body = ch.client.http_client._test_only_last_response.text
    ch.close()
    assert info.value.status == 422 and "must have required property 'To'" in body


def test_without_credentials_prism_answers_401_which_the_channel_maps_to_ops(prism_url: str) -> None:
    from notifiers.sms import classify_error

    ch = channel(prism_url)
    resp = ch.client.http_client.request(  # the SDK's own transport, with no Authorization header
        "POST",
        f"{prism_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": TO, "From": FROM, "Body": "x"},
        auth=None,
    )
    ch.close()
    result = classify_error(None, resp.status_code)
    assert resp.status_code == 401 and (result.status, result.action) == ("permanent", "ops_alert")
