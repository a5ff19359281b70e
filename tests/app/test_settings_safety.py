"""Safer settings and content: https outside development, the console as a demo channel only, SMTP
credentials over TLS, defanged free text, and transfer rules muted only with step-up auth."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alerts.store.models import AlertRow
from alerts.suppressions import SuppressionIn, add_suppression
from delivery.settings import effective_console
from notifiers.render import render
from tests.app.helpers import make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.errors import ConfigError
from vigil.importer import import_dir
from vigil.settings import load_settings

HOOK = {"enabled": True, "url": "http://hooks.exchange.example/freeze", "secret": "s" * 32}


@pytest.mark.parametrize(("overrides", "key"), [
    ({"web": {"base_url": "http://alerts.exchange.example"}}, "web.base_url"),
    ({"hooks": {"freeze": HOOK}}, "hooks.freeze.url"),
    ({"hooks": {"named": {"siem": HOOK}}}, "hooks.named.siem.url"),
    ({"channels": {"webhook": HOOK}}, "channels.webhook.url"),
    ({"tickets": {"helpdesk": {"kind": "webhook", "url": "http://desk.example/t", "secret": "s" * 32}}},
     "tickets.helpdesk.url"),
    ({"channels": {"console": {"stand_in_for": ["sms"]}}}, "channels.console.stand_in_for"),
])
def test_production_refuses_plain_http_and_console_stand_ins(overrides: dict[str, Any], key: str) -> None:
    base = {"web": {"base_url": "https://alerts.exchange.example"}}
    merged = {**base, **overrides} if "web" not in overrides else overrides
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(None, environment="production", **merged)
    load_settings(None, environment="development", **merged)  # development keeps working on loopback


def test_production_with_https_is_accepted_and_never_stands_in() -> None:
    s = load_settings(None, environment="production", web={"base_url": "https://alerts.exchange.example"})
    assert effective_console(s).stand_in_for == []
    assert effective_console(load_settings(None)).stand_in_for == ["push", "sms", "email"]


def test_the_console_is_off_beside_a_real_channel_unless_named() -> None:
    sms = {"enabled": True, "account_sid": "AC" + "0" * 32, "auth_token": "t" * 32, "from_number": "+15005550006"}
    assert effective_console(load_settings(None)).enabled
    assert not effective_console(load_settings(None, channels={"sms": sms})).enabled
    named = load_settings(None, channels={"sms": sms, "console": {"enabled": True}})
    assert effective_console(named).enabled


def test_smtp_credentials_need_tls_except_to_this_machine() -> None:
    creds = {"enabled": True, "username": "vigil", "password": "pw", "sender": "sec@exchange.example"}
    with pytest.raises(ConfigError, match="SMTP credentials are sent only over TLS"):
        load_settings(None, channels={"email": {**creds, "host": "smtp.exchange.example"}})
    load_settings(None, channels={"email": {**creds, "host": "smtp.exchange.example", "starttls": True}})
    load_settings(None, channels={"email": {**creds, "host": "127.0.0.1"}})


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_free_text_is_defanged_in_sms_and_email(channel: str) -> None:
    ctx = {"alert": {"id": "a1", "rule_id": "r", "detector": "new_location", "kind": "country", "severity": "high",
                     "ts": datetime(2026, 3, 1, tzinfo=UTC),
                     "evidence": {"country": "BR", "city": "Sao Paulo",
                                  "device": "wallet-help.support.io"}},
           "account": {"account_id": "A1", "locale": "en", "timezone": "UTC"},
           "link": "https://alerts.exchange.example/c/tok", "sms_code": "1234", "expires_at": None, "brand": "Vigil"}
    out = render("new_location", channel, "en", ctx)
    text = out.text + (out.html or "")
    assert "wallet-help.sup" not in text and "support.io" not in text
    assert "wallet-help[.]sup" in text or channel == "sms"  # SMS may drop the device to fit


def test_allow_listed_addresses_mute_transfer_rules_only_with_step_up(db_url: str, tmp_path: Path) -> None:
    data = small_dir(tmp_path / "d", bad_row=False, accounts=1)
    statuses = {}
    for step_up in (False, True):
        app = make_app(db_url if not step_up else f"sqlite:///{tmp_path / 'b.db'}",
                       suppressions={"allowlist_step_up": step_up})
        with app.sessions.begin() as s:
            add_suppression(s, SuppressionIn(account_id="A1", kind="address", address="0xattacker",
                                             starts_at=datetime(2026, 3, 1, tzinfo=UTC),
                                             expires_at=datetime(2026, 4, 1, tzinfo=UTC)),
                            now=datetime(2026, 3, 1, tzinfo=UTC))
        import_dir(app.engine, data)
        scan_until_caught_up(app)
        with app.sessions() as s:
            statuses[step_up] = next(a.status for a in s.scalars(select(AlertRow))
                                     if a.rule_id == "withdrawal-large")
        app.close()
    assert statuses[False] != "suppressed"  # whoever took the account may have allow-listed it
    assert statuses[True] == "suppressed"
