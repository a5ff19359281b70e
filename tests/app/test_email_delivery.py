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
