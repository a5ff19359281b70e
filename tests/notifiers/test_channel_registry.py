"""build_channels: validation at load (all errors, named keys), stand-ins, entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifiers.console import ConsoleChannel
from notifiers.email import EmailChannel
from notifiers.registry import CHANNELS, ChannelConfigError, build_channels, channel_class, validate_channels
from notifiers.sms import SmsChannel
from tests.notifiers.notify_support import ACCOUNT_SID, fake_firebase_credential, recording_twilio_client


def test_the_embedded_default_is_the_console_standing_in_for_every_user_channel() -> None:
    built = build_channels({})
    console = built["console"]
    assert isinstance(console, ConsoleChannel)
    assert built["sms"] is console and built["push"] is console and built["email"] is console
    assert "webhook" not in built


def test_the_settings_model_builds_as_is() -> None:
    """vigil.settings.Channels: typed console/email sections plus extra sections for the rest."""
    from vigil.settings import Settings

    settings = Settings.model_validate(
        {
            "channels": {
                "email": {
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": 2525,
                    "password": "pw",
                    "username": "u",
                },
                "sms": {
                    "enabled": True,
                    "account_sid": ACCOUNT_SID,
                    "auth_token": "tok-0123456789",
                    "from_number": "+15017122661",
                },
            }
        }
    )
    built = build_channels(settings.channels, seams={"sms": {"http_client": recording_twilio_client([])}})
    assert isinstance(built["email"], EmailChannel) and built["email"].config.port == 2525
    assert isinstance(built["sms"], SmsChannel) and built["push"] is built["console"]
    assert built["email"].config.password and built["email"].config.password.get_secret_value() == "pw"


def test_every_error_at_once_each_naming_its_key() -> None:
    with pytest.raises(ChannelConfigError) as info:
        validate_channels(
            {
                "smss": {"enabled": True},
                "sms": {"enabled": True, "acount_sid": ACCOUNT_SID},
                "email": {"port": 70000, "starttls": True, "use_ssl": True},
                "webhook": {"enabled": True, "secret": "too-short-secret"},
                "push": "yes",
            }
        )
    errors = info.value.errors
    text = "\n".join(errors)
    assert "channels.smss: unknown channel 'smss'. Did you mean 'sms'?" in text
    assert "channels.sms.acount_sid: unknown setting 'acount_sid'. Did you mean 'account_sid'?" in text
    assert "channels.email.port: must be <= 65535, got 70000" in text
    assert "channels.webhook.secret: a webhook secret must be at least 32 characters" in text
    assert "channels.push: expected a mapping of settings, got str" in text
    assert "too-short-secret" not in str(info.value), "a secret never reaches an error message"


def test_a_channel_that_cannot_start_is_reported_like_a_bad_setting(tmp_path: Path) -> None:
    with pytest.raises(ChannelConfigError, match=r"channels\.push: the push channel needs credentials_file"):
        build_channels({"push": {"enabled": True, "project_id": "p"}})
    with pytest.raises(ChannelConfigError, match=r"channels\.sms: .*needs account_sid"):
        build_channels({"sms": {"enabled": True}})


def test_seams_reach_the_constructor() -> None:
    built = build_channels(
        {"push": {"enabled": True, "project_id": "demo-alerts"}},
        seams={"push": {"credential": fake_firebase_credential()}},
    )
    try:
        assert built["push"].describe()["project_id"] == "demo-alerts"
    finally:
        built["push"].close()


def test_entry_points_plug_in_third_party_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vigil_fax.py").write_text(
        "from notifiers.base import Channel, ChannelConfig, DeliveryResult\n"
        "class FaxConfig(ChannelConfig):\n    number: str = ''\n"
        "class FaxChannel(Channel):\n    name = 'fax'\n    config_model = FaxConfig\n"
        "    def __init__(self, config):\n        self.config = config\n"
        "    def send(self, message):\n        return DeliveryResult('delivered')\n"
        "class NotAChannel:\n    pass\n"
    )
    dist = tmp_path / "vigil_fax-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vigil-fax\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[vigil.channels]\nfax = vigil_fax:FaxChannel\nbogus = vigil_fax:NotAChannel\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    built = build_channels({"fax": {"enabled": True, "number": "+4930123"}})
    assert built["fax"].name == "fax" and built["fax"].config.number == "+4930123"  # type: ignore[attr-defined]
    with pytest.raises(LookupError, match="is not a Channel subclass"):
        channel_class("bogus")
    with pytest.raises(LookupError, match="Did you mean 'fax'"):
        channel_class("faxx")


def test_the_registry_is_closed_and_complete() -> None:
    assert set(CHANNELS) == {"console", "email", "push", "sms", "webhook"}
    for name, cls in CHANNELS.items():
        assert cls.name == name and cls.config_model.model_config.get("extra") == "forbid"


def test_the_names_a_rule_file_is_checked_against_are_the_registry_s() -> None:
    """notifiers.names lists the built-in channels without importing them (a backtest loads rules,
    never a channel's SDK); the list must be the registry's."""
    from notifiers.names import BUILTIN_CHANNELS, channel_names

    assert set(BUILTIN_CHANNELS) == set(CHANNELS)
    assert set(channel_names()) >= set(CHANNELS)
