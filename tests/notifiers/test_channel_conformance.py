"""One suite over every registered channel (like scikit-learn's parametrize_with_checks).

Each channel gets a reachable fake of its provider (an SMTP server, a loopback FCM / webhook
receiver, a recording Twilio client, a stream) and an unreachable one (a closed port).  The
contract: a reachable provider gives an ok result with a provider id; a recipient without the
address the channel needs is ``skipped`` without a request; an unreachable provider is
``transient``; nothing raises; secrets appear in no description.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from notifiers.base import Channel, DeliveryResult
from notifiers.registry import CHANNELS, build_channels
from tests.notifiers.notify_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    LoopbackHTTP,
    Reply,
    fake_firebase_credential,
    message,
    recording_twilio_client,
    twilio_message_json,
)

SECRET = "conformance-secret-0123456789abcdef"


@dataclass
class Setup:
    settings: dict[str, Any]
    seams: dict[str, Any]
    requests: Callable[[], int]  # how many requests reached the fake provider


def _fcm_settings(url: str) -> dict[str, Any]:
    return {
        "enabled": True,
        "project_id": "demo-alerts",
        "endpoint": f"{url}/v1/projects/{{project}}/messages:send",
    }


def reachable(name: str, smtp: Any, http: LoopbackHTTP) -> Setup:
    http.route("/v1/projects/", Reply(200, {"name": "projects/demo-alerts/messages/1"}))
    http.route("/hook", Reply(200, {"ok": True}))
    if name == "console":
        out = io.StringIO()
        return Setup({"enabled": True}, {"stream": out}, lambda: out.getvalue().count("── "))
    if name == "email":
        return Setup({"enabled": True, "host": smtp.host, "port": smtp.port}, {}, lambda: len(smtp.messages))
    if name == "sms":
        client = recording_twilio_client([(201, twilio_message_json())])
        return Setup(
            {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM},
            {"http_client": client},
            lambda: len(client.calls),
        )
    if name == "push":
        return Setup(
            _fcm_settings(http.url), {"credential": fake_firebase_credential()}, lambda: len(http.requests)
        )
    if name == "webhook":
        return Setup(
            {"enabled": True, "url": f"{http.url}/hook", "secret": SECRET}, {}, lambda: len(http.requests)
        )
    raise AssertionError(f"no conformance setup for channel {name!r}: add one")


def unreachable(name: str, port: int) -> Setup | None:
    url = f"http://127.0.0.1:{port}"
    if name == "console":
        return None  # a stream is always there (a closed one is covered in test_channel_console)
    if name == "email":
        return Setup({"enabled": True, "host": "127.0.0.1", "port": port, "timeout": 5}, {}, lambda: 0)
    if name == "sms":
        return Setup(
            {
                "enabled": True,
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": FROM,
                "base_url": url,
                "timeout": 5,
            },
            {},
            lambda: 0,
        )
    if name == "push":
        return Setup(
            {**_fcm_settings(url), "timeout": 5}, {"credential": fake_firebase_credential()}, lambda: 0
        )
    if name == "webhook":
        return Setup({"enabled": True, "url": f"{url}/hook", "secret": SECRET, "timeout": 5}, {}, lambda: 0)
    raise AssertionError(name)


@pytest.fixture
def build() -> Iterator[Callable[[str, Setup], Channel]]:
    made: list[Channel] = []

    def _build(name: str, setup: Setup) -> Channel:
        ch = build_channels({name: setup.settings}, seams={name: setup.seams})[name]
        made.append(ch)
        return ch

    yield _build
    for ch in made:
        ch.close()


CHANNEL_NAMES = sorted(CHANNELS)


@pytest.mark.parametrize("name", CHANNEL_NAMES)
def test_a_reachable_provider_gives_an_ok_result(
    name: str, smtp_server: Any, http_server: LoopbackHTTP, build: Any
) -> None:
    setup = reachable(name, smtp_server, http_server)
    ch = build(name, setup)
    result = ch.send(message(name))
    assert isinstance(result, DeliveryResult) and result.ok and result.provider_id, result
    if name == "email":
        smtp_server.wait_for(1)
    assert setup.requests() == 1


@pytest.mark.parametrize("name", CHANNEL_NAMES)
def test_a_recipient_without_the_needed_address_is_skipped_without_a_request(
    name: str, smtp_server: Any, http_server: LoopbackHTTP, build: Any
) -> None:
    setup = reachable(name, smtp_server, http_server)
    ch = build(name, setup)
    bare = message(name, phone=None, email=None, push_token=None)
    result = ch.send(bare)
    if ch.needs is None:
        assert result.ok and ch.can_reach(bare.recipient)  # console and webhook need no address
    else:
        assert result.status == "skipped" and not ch.can_reach(bare.recipient)
        assert setup.requests() == 0


REMOTE = [n for n in CHANNEL_NAMES if unreachable(n, 1) is not None]


def test_every_channel_but_the_console_has_a_remote_end() -> None:
    assert set(CHANNEL_NAMES) - set(REMOTE) == {"console"}


@pytest.mark.parametrize("name", REMOTE)
def test_an_unreachable_provider_is_transient_and_never_raises(
    name: str, closed_port: int, build: Any
) -> None:
    setup = unreachable(name, closed_port)
    assert setup is not None
    result = build(name, setup).send(message(name))
    assert result.status == "transient" and result.error, result


@pytest.mark.parametrize("name", CHANNEL_NAMES)
def test_config_is_strict_and_secrets_are_secret(
    name: str, smtp_server: Any, http_server: LoopbackHTTP, build: Any
) -> None:
    model = CHANNELS[name].config_model
    with pytest.raises(ValidationError):
        model.model_validate({"no_such_setting": 1})
    for field, info in model.model_fields.items():
        if any(word in field for word in ("token", "secret", "password")):
            assert SecretStr in (getattr(info.annotation, "__args__", None) or (info.annotation,)), field
    setup = reachable(name, smtp_server, http_server)
    ch = build(name, setup)
    described = repr(ch.describe()) + repr(getattr(ch, "config", ""))
    for secret in (AUTH_TOKEN, SECRET):
        assert secret not in described
