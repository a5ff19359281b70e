"""The email channel over smtplib against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from notifiers.email import EmailChannel, EmailConfig
from notifiers.render import render
from tests.notifiers.notify_support import context, message, self_signed_cert

LINK = "https://alerts.exchange.example/c/tok123"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def channel(server: Any, **kw: Any) -> EmailChannel:
    return EmailChannel(EmailConfig(enabled=True, host=server.host, port=server.port, **kw))


def rendered_message(locale: str, **kw: Any) -> Any:
    r = render("new_location", "email", locale, context("new_location", locale=locale))
    return message("email", subject=r.subject, text=r.text, html=r.html, locale=locale, **kw)


@pytest.mark.parametrize("locale", ["en", "zh-CN", "zh-TW", "ko", "ja"])
def test_a_localised_multipart_message_arrives_intact(smtp_server: Any, locale: str) -> None:
    ch = channel(smtp_server)
    msg = rendered_message(locale)
    result = ch.send(msg)
    ch.close()
    assert result.status == "delivered" and result.provider_id == "<vigil.ob-1@exchange.example>"
    [got] = smtp_server.wait_for(1)
    assert got.mail_from == "security@exchange.example" and got.rcpt_tos == ["ana@example.com"]
    m = got.message
    assert m["Subject"] == msg.subject and m["To"] == "ana@example.com"
    assert m["From"] == "Vigil Security <security@exchange.example>"
    assert m["Message-ID"] == "<vigil.ob-1@exchange.example>" and m["Date"]
    assert m["Auto-Submitted"] == "auto-generated" and m["Content-Language"] == locale
    assert m["List-Unsubscribe"] is None, "transactional security mail is not a subscription"
    assert m.get_content_type() == "multipart/alternative"
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert text.replace("\r\n", "\n").strip() == msg.text.strip() and "BLUE42" in html
    assert set(re.findall(r"https?://[^\s\"<>]+", text + html)) == {LINK}, "only the confirmation link"


def test_auth_login_and_one_session_for_many_messages(smtp_server_auth: Any) -> None:
    ch = channel(smtp_server_auth, username="vigil", password="s3cret")
    results = [ch.send(message("email", outbox_id=f"ob-{i}")) for i in range(3)]
    ch.close()
    assert [r.status for r in results] == ["delivered"] * 3
    got = smtp_server_auth.wait_for(3)
    assert [g.login for g in got] == ["vigil"] * 3
    assert [g.message["Message-ID"] for g in got] == [f"<vigil.ob-{i}@exchange.example>" for i in range(3)]


def test_a_wrong_password_is_an_operator_problem(port_factory: Any) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        # handled=False: aiosmtpd then answers 535 itself (the default, handled=True, answers nothing)
        return AuthResult(success=False, handled=False)

    port = port_factory()
    ctl = Controller(
        Picky(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    ctl.start()
    try:
        ch = EmailChannel(
            EmailConfig.model_validate(
                dict(enabled=True, host="127.0.0.1", port=port, username="vigil", password="wrong-pass")
            )
        )
        result = ch.send(message("email"))
    finally:
        ctl.stop()
    assert (result.status, result.action, result.error_code) == ("permanent", "ops_alert", "535")
    assert "wrong-pass" not in (result.error or "")


class Picky:
    """Answers RCPT by the local part: temp@ -> 450, gone@ -> 550, full@ -> 552; else accepts."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        local = address.split("@")[0]
        codes = {
            "temp": "450 4.2.1 mailbox busy, try later",
            "gone": "550 5.1.1 no such user",
            "full": "552 5.2.2 mailbox full",
        }
        if local in codes:
            return codes[local]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 queued"


@pytest.fixture
def picky(port_factory: Any) -> Iterator[tuple[Picky, int]]:
    from aiosmtpd.controller import Controller

    handler, port = Picky(), port_factory()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    yield handler, port
    ctl.stop()


@pytest.mark.parametrize(
    ("address", "status", "action", "code"),
    [
        ("temp@example.com", "transient", None, "450"),
        ("gone@example.com", "permanent", "bad_address", "550"),
        ("full@example.com", "permanent", None, "552"),
    ],
)
def test_smtp_codes_map_to_transient_and_permanent(
    picky: tuple[Picky, int], address: str, status: str, action: str | None, code: str
) -> None:
    handler, port = picky
    ch = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=port))
    result = ch.send(message("email", email=address))
    ok = ch.send(message("email", email="fine@example.com"))  # the session survives a refusal
    ch.close()
    assert (result.status, result.action, result.error_code) == (status, action, code)
    assert ok.status == "delivered" and len(handler.messages) == 1


def test_a_server_restart_between_messages_reconnects(port_factory: Any) -> None:
    from aiosmtpd.controller import Controller

    handler, port = Picky(), port_factory()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    ch = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=port))
    try:
        assert ch.send(message("email")).status == "delivered"
        ctl.stop()  # drops the kept-alive session
        ctl = Controller(handler, hostname="127.0.0.1", port=port)
        ctl.start()
        assert ch.send(message("email", outbox_id="ob-2")).status == "delivered"
    finally:
        ch.close()
        ctl.stop()
    assert len(handler.messages) == 2


@pytest.fixture
def tls_server(tmp_path: Path, port_factory: Any) -> Iterator[tuple[Picky, int, Path]]:
    import ssl

    from aiosmtpd.controller import Controller

    cert, key = self_signed_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    handler, port = Picky(), port_factory()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    ctl.start()
    yield handler, port, cert
    ctl.stop()


def test_starttls_with_a_private_ca(tls_server: tuple[Picky, int, Path]) -> None:
    handler, port, cert = tls_server
    ch = EmailChannel(
        EmailConfig(enabled=True, host="127.0.0.1", port=port, starttls=True, ca_file=str(cert))
    )
    assert ch.send(message("email")).status == "delivered"
    ch.close()
    assert len(handler.messages) == 1


def test_an_untrusted_certificate_is_an_operator_problem(tls_server: tuple[Picky, int, Path]) -> None:
    _, port, _ = tls_server
    ch = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=port, starttls=True))
    result = ch.send(message("email"))
    assert (result.status, result.action) == ("permanent", "ops_alert") and "certificate" in (
        result.error or ""
    )


def test_a_server_that_requires_tls_refuses_plain_mail(tls_server: tuple[Picky, int, Path]) -> None:
    handler, port, _ = tls_server
    result = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=port)).send(message("email"))
    assert result.status == "permanent" and result.error_code == "530" and handler.messages == []


def test_unreachable_server_and_missing_address(closed_port: int) -> None:
    ch = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=closed_port, timeout=5))
    assert ch.send(message("email")).status == "transient"
    assert ch.send(message("email", email=None)).status == "skipped"
    bad = ch.send(message("email", email="not-an-address"))
    assert (bad.status, bad.action) == ("permanent", "bad_address")


def test_config_is_checked_at_load() -> None:
    with pytest.raises(ValidationError, match="choose one of starttls"):
        EmailConfig(starttls=True, use_ssl=True)
    with pytest.raises(ValidationError, match="not an email address"):
        EmailConfig(sender="Vigil Security")
    with pytest.raises(ValidationError, match="password is set but username is not"):
        EmailConfig.model_validate(dict(password="x"))
    with pytest.raises(ValidationError, match="Extra inputs"):
        EmailConfig.model_validate(dict(hostname="smtp"))
    cfg = EmailConfig.model_validate(dict(username="u", password="hunter2-secret"))
    assert "hunter2-secret" not in repr(cfg) and "hunter2-secret" not in str(EmailChannel(cfg).describe())
