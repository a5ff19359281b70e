"""The console channel: what a stand-in shows for each channel."""

from __future__ import annotations

import io

from notifiers.console import ConsoleChannel, ConsoleConfig, mask
from notifiers.render import render
from tests.notifiers.notify_support import context, message


def test_stands_in_for_sms_with_the_text_and_its_segment_count() -> None:
    out = io.StringIO()
    ch = ConsoleChannel(ConsoleConfig(), stream=out)
    r = render("new_location", "sms", "zh-CN", context("new_location", locale="zh-CN"))
    result = ch.send(message("sms", text=r.text, subject="", locale="zh-CN"))
    printed = out.getvalue()
    assert result.status == "delivered" and result.provider_id == "console:ob-1"
    assert "── sms (console) → +1••••••5310 · account acct-1 · locale zh-CN · alert al-1" in printed
    assert r.text in printed and f"[UCS-2, {len(r.text)} units, {r.segments} segment(s)]" in printed
    assert "+15558675310" not in printed


def test_push_shows_title_body_and_data_and_email_hides_html_by_default() -> None:
    out = io.StringIO()
    ch = ConsoleChannel(ConsoleConfig(), stream=out)
    r = render("new_location", "push", "en", context("new_location"))
    ch.send(message("push", subject=r.subject, text=r.text, data=r.data))
    e = render("new_location", "email", "en", context("new_location"))
    ch.send(message("email", subject=e.subject, text=e.text, html=e.html))
    printed = out.getvalue()
    assert "Subject: New sign-in from Paris, France" in printed and "actions=confirm,deny" in printed
    assert "→ a••@example.com" in printed and f"[+ HTML part, {len(e.html or '')} chars]" in printed
    assert "<html" not in printed


def test_unmasked_and_html_on_request_and_a_broken_stream_is_transient() -> None:
    out = io.StringIO()
    ConsoleChannel(ConsoleConfig(mask_addresses=False, show_html=True), stream=out).send(
        message("email", html="<p>hi</p>")
    )
    assert "ana@example.com" in out.getvalue() and "<p>hi</p>" in out.getvalue()
    closed = io.StringIO()
    closed.close()
    assert ConsoleChannel(ConsoleConfig(), stream=closed).send(message("sms")).status == "transient"


def test_mask() -> None:
    assert mask("+15558675310") == "+1••••••5310"
    assert mask("x@example.com") == "x••@example.com"
    assert mask("12345") == "•••••"
    assert mask("fcm" + "x" * 150 + "v6--") == "fc" + "•" * 12 + "v6--"
