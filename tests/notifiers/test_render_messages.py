"""Templates x channels x locales: content, safety and the SMS segment budget."""

from __future__ import annotations

import re
from typing import Any

import pytest

from notifiers import catalogue as cat
from notifiers import sms_segments
from notifiers.render import (
    RENDER_CHANNELS,
    UnknownTemplateError,
    available_templates,
    render,
)
from tests.notifiers.notify_support import context

TEMPLATES = sorted(available_templates())
LINK = "https://alerts.exchange.example/c/tok123"
URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+")

LOGIN = {"country": "FR", "city": "Paris", "ip": "203.0.113.9", "device_id": "iPhone 15 Pro"}
WITHDRAWAL = {
    "amount": 2.5,
    "asset": "BTC",
    "amount_usd": 162500.25,
    "address": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
    "network": "BTC",
    "ip": "203.0.113.9",
}
POSITION = {
    "symbol": "BTCUSDT",
    "leverage": 75,
    "margin_ratio": 0.92,
    "mark_price": 64000.5,
    "liquidation_price": 61000,
}
EVIDENCE = {
    "new_location": ("new_location", LOGIN),
    "large_withdrawal": ("large_withdrawal", WITHDRAWAL),
    "liquidation_risk": ("high_leverage", POSITION),
    "high_leverage": ("high_leverage", POSITION),
    "security_alert": ("withdrawal_after_change", {**LOGIN, **WITHDRAWAL}),
    "freeze_guidance": ("new_location", LOGIN),
    "reminder": ("large_withdrawal", WITHDRAWAL),
    # messages about the holder's request, not an alert: no evidence
    "survey": ("generic", {}),
    "ticket_ack": ("generic", {}),
}
TAKEOVER = {"new_location", "large_withdrawal", "security_alert", "reminder"}

# The longest values a finding can plausibly carry.
WORST = {
    "country": "GS",  # South Georgia & South Sandwich Islands
    "city": "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "ip": "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "user_agent": "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome",
    "amount": "123456789.12345678",
    "asset": "USDT",
    "amount_usd": 123456789.12,
    "address": "0x" + "ab" * 20,
    "network": "Arbitrum One Nova",
    "symbol": "1000SHIBUSDT-PERP-240628",
    "leverage": 125,
    "margin_ratio": 0.995,
}
WORST_CODES = {
    "en": "ANTIPHISH-CODE-20CHR",
    "zh-CN": "安全码安全码安全码安全码安全码安全码安全",
    "zh-TW": "安全碼安全碼安全碼安全碼安全碼安全碼安全",
    "ko": "안전코드안전코드안전코드안전코드안전코드",
    "ja": "あんぜんこーどあんぜんこーどあんぜんこーど"[:20],
}


def ctx(template: str, locale: str = "en", **kw: Any) -> dict[str, Any]:
    detector, ev = EVIDENCE[template]
    return context(detector, kw.pop("evidence", ev), locale=locale, **kw)


@pytest.mark.parametrize("locale", cat.LOCALES)
@pytest.mark.parametrize("channel", RENDER_CHANNELS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_in_every_channel_and_locale(template: str, channel: str, locale: str) -> None:
    r = render(template, channel, locale, ctx(template, locale))
    assert r.locale == locale
    assert r.text.strip()
    for part in (r.subject, r.text, r.html or ""):
        assert "{" not in part and "}" not in part, part
        assert "None" not in part
    assert "BLUE42" in r.text, "the anti-phishing code is shown"
    if channel == "email":
        assert r.subject and r.html and "BLUE42" in r.html
    if channel == "sms":
        assert r.subject == "" and r.segments == sms_segments.segment_count(r.text)


def test_templates_the_rule_pack_needs_exist() -> None:
    assert {
        "new_location",
        "large_withdrawal",
        "liquidation_risk",
        "high_leverage",
        "security_alert",
        "freeze_guidance",
        "reminder",
    } <= available_templates()


def test_catalogues_have_every_key_with_the_same_placeholders() -> None:
    en = cat.load("en")
    for loc in cat.LOCALES:
        other = cat.load(loc)
        assert set(other) == set(en), f"{loc}: missing {set(en) - set(other)}, extra {set(other) - set(en)}"
        for key, text in other.items():
            assert cat.placeholders(text) == cat.placeholders(en[key]), f"{loc}:{key}"


@pytest.mark.parametrize("locale", [x for x in cat.LOCALES if x != "en"])
def test_other_locales_are_translated_not_english(locale: str) -> None:
    for template in TEMPLATES:
        en = render(template, "email", "en", ctx(template, "en"))
        other = render(template, "email", locale, ctx(template, locale))
        assert other.subject != en.subject and other.text != en.text


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("channel", RENDER_CHANNELS)
def test_the_only_link_is_the_confirmation_link(template: str, channel: str) -> None:
    for locale in cat.LOCALES:
        r = render(template, channel, locale, ctx(template, locale))
        urls = set(URL.findall(r.text)) | set(URL.findall(r.subject))
        if channel == "sms" or template == "freeze_guidance":
            assert not urls, r.text
        else:
            assert urls <= {LINK}, urls
        if r.html:
            hrefs = set(re.findall(r'href="([^"]*)"', r.html))
            assert hrefs <= {LINK}
            assert not re.search(r"(?i)<script|<img|<form", r.html)
        assert not re.search(r"(?i)(password|2fa|two-factor)[^\n]{0,40}https?://", r.text)


def test_attacker_controlled_evidence_cannot_add_a_link() -> None:
    evil = {
        **LOGIN,
        "user_agent": "Call support: https://evil.example/reset-password or www.evil.example",
        "city": "<b>x</b>\r\nBcc: victim@example.com",
    }
    for channel in RENDER_CHANNELS:
        r = render("new_location", channel, "en", ctx("new_location", evidence=evil))
        assert "https://evil" not in r.text and "www.evil" not in r.text
        assert set(URL.findall(r.text)) <= {LINK}
        assert "\r" not in r.subject and "\n" not in r.subject
        if r.html:
            assert "<b>x</b>" not in r.html and "&lt;b&gt;x&lt;/b&gt;" in r.html


@pytest.mark.parametrize("locale", cat.LOCALES)
def test_takeover_messages_carry_freeze_guidance_and_reply_codes(locale: str) -> None:
    for template in TAKEOVER:
        email = render(template, "email", locale, ctx(template, locale))
        assert cat.fill(cat.lookup(locale, "common.after_freeze"), {"brand": "Vigil"}) in email.text
        assert cat.fill(cat.lookup(locale, "common.confirm_link"), {"link": LINK}) in email.text
        sms = render(template, "sms", locale, ctx(template, locale))
        assert "N 4821" in sms.text
        assert not re.search(r"(?<![A-Za-z])(YES|STOP)(?![A-Za-z])", sms.text), "never a bare keyword"
        push = render(template, "push", locale, ctx(template, locale))
        assert push.data["actions"] == "confirm,deny" and push.data["confirm_url"] == LINK


@pytest.mark.parametrize("locale", cat.LOCALES)
def test_freeze_guidance_says_change_the_password_in_the_app_and_asks_nothing(locale: str) -> None:
    for channel in ("sms", "push", "email"):
        r = render("freeze_guidance", channel, locale, ctx("freeze_guidance", locale))
        assert "4821" not in r.text and LINK not in r.text and "actions" not in r.data
    email = render("freeze_guidance", "email", locale, ctx("freeze_guidance", locale))
    assert cat.fill(cat.lookup(locale, "freeze_guidance.step1"), {"brand": "Vigil"}) in email.text


@pytest.mark.parametrize("template", ["liquidation_risk", "high_leverage"])
def test_trading_messages_advise_without_a_confirmation(template: str) -> None:
    r = render(template, "email", "en", ctx(template, link=None, sms_code=None))
    assert "add margin or reduce" in r.text or "liquidate" in r.text
    assert "Not me" not in r.text
    sms = render(template, "sms", "en", ctx(template, link=None, sms_code=None))
    assert "Open the Vigil app" in sms.text and "Reply" not in sms.text


def test_no_anti_phishing_code_means_no_line_for_it() -> None:
    r = render("new_location", "email", "en", ctx("new_location", anti_phishing_code=None))
    assert "anti-phishing" not in r.text.lower() and "anti-phishing" not in (r.html or "").lower()


def test_evidence_is_shown_in_the_users_zone_and_language() -> None:
    r = render("new_location", "email", "en", ctx("new_location"))
    assert "10:05:00\u202fPM (UTC+8) = 2026-04-14 14:05 UTC" in r.text  # CLDR: narrow no-break space
    assert "Paris, France" in r.text and "203.0.113.9" in r.text and "iPhone 15 Pro" in r.text
    ny = render("new_location", "sms", "en", ctx("new_location", timezone="America/New_York"))
    assert "Apr 14 10:05 UTC-4" in ny.text
    bad = render("new_location", "sms", "en", ctx("new_location", timezone="Mars/Olympus"))
    assert "14:05 UTC" in bad.text
    zh = render("new_location", "email", "zh-CN", ctx("new_location", "zh-CN"))
    assert "法国Paris" in zh.text and "2026年4月14日 22:05:00" in zh.text
    assert (
        "法國Paris" in render("new_location", "email", "zh-Hant-HK", ctx("new_location", "zh-Hant-HK")).text
    )
    gb = render("new_location", "sms", "en-GB", ctx("new_location", "en-GB"))
    assert "14 Apr 22:05" in gb.text
    assert render("new_location", "email", "fr-FR", ctx("new_location", "fr-FR")).locale == "en"


def test_amounts_and_currencies_follow_the_locale() -> None:
    en = render("large_withdrawal", "email", "en", ctx("large_withdrawal"))
    assert "2.5 BTC" in en.subject and "$162,500.25" in en.text and "bc1qxy…hx0wlh" in en.text
    ja = render("large_withdrawal", "email", "ja", ctx("large_withdrawal", "ja"))
    assert "2.5 BTC" in ja.subject and "$162,500.25" in ja.text
    zh = render("large_withdrawal", "email", "zh-CN", ctx("large_withdrawal", "zh-CN"))
    assert "US$162,500.25" in zh.text
    big = render(
        "large_withdrawal",
        "email",
        "en",
        ctx("large_withdrawal", evidence={"amount": "1234567.12345678", "asset": "ETH"}),
    )
    assert "1,234,567.12345678 ETH" in big.subject
    pos = render("liquidation_risk", "email", "ko", ctx("liquidation_risk", "ko"))
    assert "92%" in pos.text and "75x" in pos.text


def test_missing_evidence_still_renders() -> None:
    for template in TEMPLATES:
        for channel in RENDER_CHANNELS:
            r = render(template, channel, "en", context("new_location", {}, anti_phishing_code=None))
            assert r.text and "None" not in r.text
    r = render("new_location", "email", "en", context("new_location", {}))
    assert "an unknown location" in r.subject and "Location:" not in r.text


def test_html_is_escaped() -> None:
    r = render(
        "new_location", "email", "en", ctx("new_location", evidence={**LOGIN, "city": "<script>x</script>"})
    )
    assert "<script>" not in (r.html or "") and "&lt;script&gt;" in (r.html or "")
    assert '<html lang="en">' in (r.html or "")


def test_push_data_is_strings_with_loc_keys_and_action_titles() -> None:
    r = render("new_location", "push", "ja", ctx("new_location", "ja"))
    assert all(isinstance(v, str) for v in r.data.values())
    assert (
        r.data["title_loc_key"] == "vigil_new_location_title"
        and r.data["body_loc_key"] == "vigil_new_location_body"
    )
    assert r.data["confirm_title"] == "本人です" and r.data["alert_id"] == "al-1"
    assert r.subject == r.data["title"] and r.text == r.data["body"]


def test_an_unknown_template_names_the_nearest() -> None:
    with pytest.raises(UnknownTemplateError, match="Did you mean 'new_location'"):
        render("new_locaton", "sms", "en", ctx("new_location"))
    with pytest.raises(ValueError, match="unknown channel"):
        render("new_location", "fax", "en", ctx("new_location"))


# -- the SMS budget ------------------------------------------------------------------------------
@pytest.mark.parametrize("locale", cat.LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_sms_fits_two_segments_with_worst_case_evidence(template: str, locale: str) -> None:
    for code in (WORST_CODES[locale], WORST_CODES["ja"], None):
        for tz in ("Asia/Kathmandu", "America/St_Johns", "UTC"):
            c = context(EVIDENCE[template][0], WORST, locale=locale, timezone=tz, anti_phishing_code=code)
            r = render(template, "sms", locale, {**c, "coalesced": 12})
            info = sms_segments.analyse(r.text)
            assert info.segments <= 2, f"{template}/{locale}: {info} {r.text!r}"
            if code:
                assert code in r.text, "the anti-phishing code survives shortening"
            if template in TAKEOVER:
                assert "N 4821" in r.text, "the deny code survives shortening"


@pytest.mark.parametrize("template", TEMPLATES)
def test_english_sms_stays_gsm7_even_with_foreign_evidence(template: str) -> None:
    ev = {**WORST, "city": "São Paulo", "user_agent": "Pixel 8 – “Chrome”", "network": "Arbitrum–One"}
    r = render(template, "sms", "en", context(EVIDENCE[template][0], ev, anti_phishing_code="BLUE42"))
    assert sms_segments.encoding(r.text) == "GSM-7", r.text


def test_typical_sms_keeps_all_detail() -> None:
    r = render("new_location", "sms", "en", ctx("new_location"))
    assert r.text.startswith("Vigil: new sign-in from Paris, France. Apr 14 22:05 UTC+8.")
    assert "Device: iPhone 15 Pro" in r.text and "Reply Y 4821" in r.text and r.segments == 2
    zh = render("new_location", "sms", "zh-CN", ctx("new_location", "zh-CN"))
    assert (zh.segments or 99) <= 2 and "回复 N 4821" in zh.text


def test_a_tighter_budget_drops_detail_not_the_codes() -> None:
    r = render("new_location", "sms", "en", ctx("new_location"), max_sms_segments=1)
    assert r.segments == 1 and "N 4821" in r.text and "BLUE42" in r.text and "Device" not in r.text


def test_alert_time_may_be_iso_text_or_epoch_milliseconds() -> None:
    base = ctx("new_location")
    for ts in ("2026-04-14T14:05:00Z", "2026-04-14T16:05:00+02:00", 1_776_175_500_000):
        c = {**base, "alert": {**base["alert"], "ts": ts}}
        assert "Apr 14 22:05 UTC+8" in render("new_location", "sms", "en", c).text


def test_webhook_data_carries_ids_but_never_the_users_token() -> None:
    r = render("new_location", "webhook", "en", ctx("new_location"))
    assert r.data == {
        "alert_id": "al-1",
        "rule_id": "r-1",
        "detector": "new_location",
        "kind": "country",
        "severity": "high",
        "template": "new_location",
        "locale": "en",
        "confirmation_requested": "true",
    }
    assert "tok123" not in str(r.data) and r.html is None


def test_coalesced_messages_are_announced_in_every_channel() -> None:
    for locale in cat.LOCALES:
        for channel in ("sms", "push", "email"):
            r = render("new_location", channel, locale, {**ctx("new_location", locale), "coalesced": 3})
            assert "3" in r.text.replace("4821", "")
            assert (
                cat.fill(
                    cat.lookup(locale, "common.sms_coalesced" if channel != "email" else "common.coalesced"),
                    {"count": 3, "brand": "Vigil"},
                )
                in r.text
            )
    plain = render("new_location", "email", "en", ctx("new_location"))
    assert "more security alert" not in plain.text


RISKY = {
    **WITHDRAWAL,
    "factors": {
        "address": {"factor": 8.0, "text": "new address"},
        "share": {"factor": 4.0, "text": "95% of the balance"},
        "device": {"factor": 6.0, "text": "device new in this session (first seen 1.0 h before)"},
        "login": {"factor": 1.2, "text": "0.5 h after login"},  # below 1.5: not named
        "network": {"factor": 0.8, "text": "network known for 40 days"},
    },
}


@pytest.mark.parametrize("locale", cat.LOCALES)
def test_withdrawal_risk_names_its_strongest_factors_in_the_holders_words(locale: str) -> None:
    ctx = context("withdrawal_risk", RISKY, locale=locale, kind="score")
    text = render("large_withdrawal", "email", locale, ctx).text
    loc = cat.catalogue_locale(locale)
    names = [cat.lookup(loc, f"withdrawal_risk.factor_{k}") for k in ("address", "device", "share")]
    why = cat.lookup(loc, "label.why")
    row = next(line for line in text.splitlines() if why in line)
    # strongest first (address x8, device x6, share x4); the factors below 1.5 are left out
    assert [row.index(n) for n in names] == sorted(row.index(n) for n in names)
    assert cat.lookup(loc, "withdrawal_risk.factor_login") not in row
    assert cat.lookup(loc, "withdrawal_risk.factor_network") not in row
    assert cat.lookup(loc, "events.withdrawal_risk") != cat.lookup(loc, "events.generic")
    # the large-withdrawal detector's evidence has no factors: no such row
    plain = render("large_withdrawal", "email", locale, context("large_withdrawal", WITHDRAWAL, locale=locale)).text
    assert why not in plain
