"""The delivery job end to end with the real email channel and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import select

from alerts.store.models import Delivery, OutboxRow
from tests.app.helpers import Clock, make_app, small_dir
from tests.conftest import SmtpServer, pick_free_port
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir


def test_email_is_retried_until_the_server_answers_and_every_attempt_is_recorded(db_url: str, tmp_path: Path
                                                                               ) -> None:
    port = pick_free_port()  # nothing listens here yet: the first attempt is refused
    clock = Clock()
    app = make_app(db_url, clock=clock, channels={
        "console": {"enabled": False},
        "email": {"enabled": True, "host": "127.0.0.1", "port": port, "timeout": 5},
    })
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    first = deliver_once(app)
    assert first.retried >= 1 and first.sent == 0
    with app.sessions() as s:
        rows = s.scalars(select(OutboxRow).where(OutboxRow.channel == "email", OutboxRow.purpose == "alert")).all()
        assert rows and {r.status for r in rows} == {"retry"}
        assert all(r.next_attempt_at > clock.now for r in rows)
    server = SmtpServer("127.0.0.1", port)
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.advance(hours=2)  # past the backoff
        again = deliver_once(app)
        assert again.sent == len(rows)
        mails = server.wait_for(len(rows))
    finally:
        controller.stop()
    assert {m.rcpt_tos[0] for m in mails} == {"a1@example.com"}
    new_country = next(m for m in mails if "Sao Paulo" in m.message.get_body(("plain",)).get_content())
    text = new_country.message.get_body(("plain",)).get_content()
    assert "/c/" in text and "APC0" in text  # the confirmation link and the anti-phishing code
    assert new_country.message.get_body(("html",)) is not None
    with app.sessions() as s:
        for r in rows:
            attempts = s.scalars(select(Delivery).where(Delivery.outbox_id == r.id).order_by(Delivery.attempt)).all()
            assert [a.status for a in attempts] == ["transient", "delivered"]
            assert s.get(OutboxRow, r.id).status == "delivered"  # type: ignore[union-attr]
    assert timedelta(0) < clock.now - rows[0].created_at
    app.close()


# a 1x1 PNG: enough for a mail client to show, and for the test to compare bytes
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360f8cf000000030101009a6a5a2a0000000049454e44ae426082")


def test_the_exchanges_name_logo_and_colour_are_in_the_email_and_on_the_page(db_url: str, tmp_path: Path,
                                                                                smtp_server: SmtpServer) -> None:
    """Branding from settings (issue 15 point 6): the logo travels inside the mail (multipart/related,
    cid:), never as a remote image; the page the mail links to shows the same name, logo and colour."""
    from fastapi.testclient import TestClient

    from vigil.web.app import create_app

    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    app = make_app(db_url, channels={
        "console": {"enabled": False},
        "email": {"enabled": True, "host": smtp_server.host, "port": smtp_server.port, "timeout": 5},
    }, branding={"name": "Hanbit Exchange", "logo_path": str(logo), "primary_color": "#12AB34"})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    sent = deliver_once(app).sent
    assert sent >= 1
    mails = smtp_server.wait_for(sent)
    msg = next(m.message for m in mails if "/c/" in m.message.get_body(("plain",)).get_content())
    html = msg.get_body(("html",)).get_content()
    assert '<img src="cid:brand-logo" alt="Hanbit Exchange"' in html and "#12ab34" in html
    assert "http" not in html.split("<img", 1)[1].split(">", 1)[0]  # no remote image
    parts = {p.get("Content-ID"): p for p in msg.walk()}
    assert parts["<brand-logo>"].get_content_type() == "image/png"
    assert parts["<brand-logo>"].get_content() == PNG
    assert "Hanbit Exchange" in msg.get_body(("plain",)).get_content()
    plain = msg.get_body(("plain",)).get_content()
    link = next((w for w in plain.split() if "/c/" in w), None)
    assert link, plain
    client = TestClient(create_app(app))
    page = client.get("/c/" + link.split("/c/", 1)[1])
    assert page.status_code == 200
    assert "Hanbit Exchange" in page.text and 'src="/brand/logo"' in page.text and "#12ab34" in page.text
    served = client.get("/brand/logo")
    assert served.status_code == 200 and served.content == PNG and served.headers["content-type"] == "image/png"
    app.close()


def test_a_logo_that_cannot_be_sent_is_refused_at_load_naming_the_key(tmp_path: Path) -> None:
    from vigil.errors import ConfigError
    from vigil.settings import load_settings

    cfg = tmp_path / "vigil.yaml"
    for logo, why in ((tmp_path / "missing.png", "no such file"), (tmp_path / "logo.gif", "a logo is a .png")):
        cfg.write_text(f"branding:\n  name: X\n  logo_path: {logo}\n")
        try:
            load_settings(cfg)
        except ConfigError as e:
            assert "branding.logo_path" in str(e) and why in str(e), str(e)
        else:
            raise AssertionError("a bad logo was accepted")
