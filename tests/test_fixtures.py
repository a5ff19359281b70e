"""The shared fixtures of tests/conftest.py work against the real services they promise."""

from __future__ import annotations

import http.server
import smtplib
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest


def test_free_port_is_bindable(free_port: int, port_factory: Any) -> None:
    for port in (free_port, port_factory()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # the contract: the port can be bound right away


def _mail(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "vigil@example.com", to, subject
    msg.set_content("본인이 맞습니까? / 本人ですか?")
    return msg


def test_smtp_server_captures_a_real_smtp_conversation(smtp_server: Any) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.send_message(_mail("user@example.net", "Was this you?"))
    [got] = smtp_server.wait_for(1)
    assert got.mail_from == "vigil@example.com" and got.rcpt_tos == ["user@example.net"]
    assert got.message["Subject"] == "Was this you?"
    assert "本人ですか" in got.message.get_content()
    assert got.login is None


def test_smtp_server_auth_refuses_a_wrong_password_and_accepts_the_right_one(smtp_server_auth: Any) -> None:
    srv = smtp_server_auth
    refused = (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused)
    for password, error in (("wrong", refused[0]), (None, refused[1])):  # bad password; AUTH skipped
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as client, pytest.raises(error):
            if password is not None:
                client.login(srv.user, password)
            client.send_message(_mail("a@example.org", "refused"))
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as client:
        client.login(srv.user, srv.password)
        client.send_message(_mail("a@example.org", "authenticated"))
    [got] = srv.wait_for(1)
    assert got.message["Subject"] == "authenticated" and got.login == "vigil"


@pytest.fixture
def local_page(free_port: int) -> Iterator[str]:
    body = b"<!doctype html><title>ok</title><form method=post><button id=go>Not me</button></form>"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"<!doctype html><title>posted</title><p id=done>Frozen</p>")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{free_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_browser_drives_debian_chromium_against_a_local_page(page: Any, local_page: str) -> None:
    page.goto(local_page)
    assert page.title() == "ok"
    page.click("#go")
    page.wait_for_selector("#done")
    assert page.title() == "posted" and page.inner_text("#done") == "Frozen"
    assert "HeadlessChrome" in page.evaluate("navigator.userAgent")
