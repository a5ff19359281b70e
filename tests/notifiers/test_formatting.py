"""One way to write amounts, devices and evidence rows, in every message and on the confirmation page."""

from __future__ import annotations

import pytest
from babel import Locale

from notifiers import catalogue as cat
from notifiers.formatting import amount, asset_decimals, device
from notifiers.render import NO_CONFIRM, available_templates, evidence_rows, render
from tests.notifiers.notify_support import context

LINK = "https://alerts.exchange.example/c/tok123"
EN, DE, KO = Locale.parse("en"), Locale.parse("de"), Locale.parse("ko_KR")


@pytest.mark.parametrize(("value", "asset", "en", "de"), [
    (4378.98666667, "USDT", "4,378.99 USDT", "4.378,99 USDT"),  # a stablecoin is written like dollars
    (100, "USDC", "100.00 USDC", "100,00 USDC"),
    (0.48590431, "BTC", "0.48590431 BTC", "0,48590431 BTC"),  # a coin keeps satoshi precision
    (1.123456789, "SOL", "1.12345679 SOL", "1,12345679 SOL"),
    (2.5, "ETH", "2.5 ETH", "2,5 ETH"),  # ... without trailing zeros
    (1000000.4, "KRW", "1,000,000 KRW", "1.000.000 KRW"),  # fiat by ISO 4217: the won has no minor unit
    (12.5, "EUR", "12.50 EUR", "12,50 EUR"),
    (5, None, "5", "5"),
])
def test_amounts_use_the_assets_own_decimals_and_the_locales_digits(value, asset, en, de) -> None:  # type: ignore[no-untyped-def]
    assert amount(value, asset, EN) == en
    assert amount(value, asset, DE) == de


def test_asset_decimals() -> None:
    assert asset_decimals("usdt") == (2, 2) and asset_decimals("JPY") == (0, 0) and asset_decimals("BTC") == (0, 8)
    assert amount("not a number", "BTC", EN) is None


def test_a_device_is_named_the_way_its_owner_knows_it() -> None:
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    assert device("Chrome 131 on Windows", chrome, "dev-1") == "Chrome 131 on Windows"  # what evidence offers
    assert device(None, chrome, "dev-1") == "Chrome 124 on Linux"
    assert device(None, "ExApp/7.4.1 (iPhone; iOS 18.3; Scale/3.00)", None) == "ExApp 7 on iOS 18"
    assert device(None, "Pixel 8 – “Chrome”", None) == "Pixel 8 – “Chrome”"  # unknown: the string (cleaned later)
    assert device(None, None, "iPhone 15 Pro") == "iPhone 15 Pro"
    assert device(None, "  ", None) is None


def test_the_email_names_the_device_not_the_user_agent() -> None:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    r = render("new_location", "email", "en", context("new_location", {"country": "FR", "user_agent": ua,
                                                                       "device_id": "dev-9f"}))
    assert "- Device: Chrome 131 on Windows 10" in r.text and "Mozilla" not in r.text


@pytest.mark.parametrize("locale", cat.LOCALES)
# ticket_ack acknowledges the holder's own message: it asks nothing, so it carries no link
@pytest.mark.parametrize("template", sorted(available_templates() - NO_CONFIRM - {"ticket_ack"}))
def test_every_email_that_asks_for_an_answer_carries_the_link(template: str, locale: str) -> None:
    detector = {"high_leverage": "high_leverage", "liquidation_risk": "high_leverage"}.get(template, "new_location")
    r = render(template, "email", locale, context(detector, {"symbol": "BTCUSDT", "leverage": 35}, locale=locale,
                                                  link=LINK))
    assert LINK in r.text, r.text
    assert f'href="{LINK}"' in (r.html or "")
    none = render(template, "email", locale, context(detector, {"symbol": "BTCUSDT"}, locale=locale, link=None,
                                                     sms_code=None))
    assert "http" not in none.text


def test_page_rows_are_the_emails_rows_with_the_whole_address() -> None:
    ev = {"amount": 41254.00994061, "asset": "USDT", "amount_usd": 41254.01,
          "address": "TQPHn89JnKeBRGLJErbSip933BLx33H5hX", "network": "TRX", "country": "KR", "city": "Busan"}
    ctx = context("large_withdrawal", ev, locale="zh-TW", timezone="Asia/Taipei")
    rows = dict(evidence_rows("large_withdrawal", "zh-TW", ctx))
    email = render("large_withdrawal", "email", "zh-TW", ctx)
    for label, value in rows.items():
        if label != "提領地址":
            assert f"- {label}: {value}" in email.text, (label, value)
    assert rows["金額"] == "41,254.01 USDT" and rows["提領地址"] == "TQPHn89JnKeBRGLJErbSip933BLx33H5hX"
    assert "(UTC+8) = " in rows["時間"]
    assert evidence_rows("no_such_template", "en", context("new_location"))  # falls back, never fails the page
