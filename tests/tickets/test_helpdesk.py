"""Helpdesk adapters against loopback servers: Zendesk's Tickets API and a signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.db import session_factory
from alerts.store.models import Ticket
from tests.tickets.fake_zendesk import FakeZendesk, serve
from tickets.core import assign, open_or_attach
from tickets.helpdesk import (
    HelpdeskError,
    TicketSnapshot,
    WebhookExporter,
    WebhookHelpdeskSettings,
    ZendeskHelpdesk,
    ZendeskSettings,
    build_helpdesk,
    sync_helpdesk,
)

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


@pytest.fixture
def zendesk(free_port: int) -> Iterator[tuple[FakeZendesk, ZendeskHelpdesk]]:
    fake = FakeZendesk(email="agent@exchange.example", token="tok-123")
    server = serve(fake, free_port)
    desk = ZendeskHelpdesk(ZendeskSettings(base_url=f"http://127.0.0.1:{free_port}", email=fake.email,
                                           api_token=SecretStr(fake.token), timeout=5))
    yield fake, desk
    desk.close()
    server.shutdown()
    server.server_close()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def _open(sessions: sessionmaker[Session], priority: str = "P1") -> str:
    with sessions.begin() as s:
        return open_or_attach(s, account_id="K1", category="account_security", priority=priority, now=NOW,
                              subject="Account security: login-new-country (high)", kind="alert",
                              ref_id="a1").id


def test_zendesk_create_update_and_status_back(zendesk: tuple[FakeZendesk, ZendeskHelpdesk],
                                               sessions: sessionmaker[Session]) -> None:
    fake, desk = zendesk
    tid = _open(sessions)
    rep = sync_helpdesk(sessions, desk, NOW)
    assert (rep.pushed, rep.created, rep.errors) == (1, 1, [])
    create = next(c for c in fake.calls if c.method == "POST")
    assert create.path == "/api/v2/tickets.json"
    sent = create.body["ticket"]
    assert (sent["priority"], sent["status"], sent["external_id"]) == ("urgent", "new", tid)
    assert sent["comment"]["public"] is False and tid in sent["comment"]["body"]
    assert "vigil" in sent["tags"] and "queue_security" in sent["tags"]
    # the lookup by external id came first, so a retry after a crash can never duplicate
    assert [c.method for c in fake.calls][:2] == ["GET", "POST"]
    assert fake.calls[0].query == {"external_id": [tid]}
    with sessions() as s:
        t = s.get(Ticket, tid)
        assert t is not None and t.external_id == f"zendesk:{next(iter(fake.tickets))}"

    n = len(fake.calls)
    assert sync_helpdesk(sessions, desk, NOW + timedelta(minutes=1)).pushed == 0  # nothing changed
    assert [c.method for c in fake.calls[n:]] == ["GET"]  # only the status pull

    with sessions.begin() as s:
        assign(s, tid, "kim", now=NOW + timedelta(minutes=2), actor="staff:lee")
    sync_helpdesk(sessions, desk, NOW + timedelta(minutes=3))
    put = [c for c in fake.calls if c.method == "PUT"][-1]
    assert put.body["ticket"]["status"] == "open" and "assigned" in put.body["ticket"]["comment"]["body"]

    remote = next(iter(fake.tickets.values()))
    remote["status"], remote["tags"] = "solved", [*remote["tags"], "vigil_risk_confirmed"]
    rep = sync_helpdesk(sessions, desk, NOW + timedelta(minutes=4))
    assert rep.applied == 1
    with sessions() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        assert (t.status, t.resolution_code, t.open_key) == ("resolved", "risk_confirmed", None)
    n = len(fake.calls)
    assert sync_helpdesk(sessions, desk, NOW + timedelta(minutes=5)).pushed == 0  # the pull was not re-pushed
    assert all(c.method == "GET" for c in fake.calls[n:])

    remote["status"] = "closed"
    sync_helpdesk(sessions, desk, NOW + timedelta(minutes=6))
    with sessions() as s:
        assert s.get(Ticket, tid).status == "closed"  # type: ignore[union-attr]


def test_zendesk_push_is_idempotent_by_external_id(zendesk: tuple[FakeZendesk, ZendeskHelpdesk],
                                                   sessions: sessionmaker[Session]) -> None:
    fake, desk = zendesk
    tid = _open(sessions, "P3")
    with sessions() as s:
        snap = TicketSnapshot.of(s.get(Ticket, tid))  # type: ignore[arg-type]
    first = desk.push(snap)
    second = desk.push(snap)  # e.g. the process died before recording the remote id
    assert first == second and len(fake.tickets) == 1
    assert [c.method for c in fake.calls] == ["GET", "POST", "GET", "PUT"]
    assert fake.tickets[int(first or 0)]["priority"] == "normal"


def test_zendesk_errors_are_transient_or_permanent(zendesk: tuple[FakeZendesk, ZendeskHelpdesk],
                                                   sessions: sessionmaker[Session]) -> None:
    fake, desk = zendesk
    tid = _open(sessions)
    fake.fail_next.append((429, {"Retry-After": "7"}))
    rep = sync_helpdesk(sessions, desk, NOW)
    assert rep.pushed == 0 and len(rep.errors) == 1 and "HTTP 429; retry after 7s" in rep.errors[0]
    assert sync_helpdesk(sessions, desk, NOW).created == 1  # the next run catches up
    with sessions() as s:
        snap = TicketSnapshot.of(s.get(Ticket, tid))  # type: ignore[arg-type]
    bad = ZendeskHelpdesk(ZendeskSettings(base_url=desk.base, email=fake.email, api_token=SecretStr("wrong")))
    with pytest.raises(HelpdeskError) as e:
        bad.push(snap)
    assert not e.value.transient and "HTTP 401" in str(e.value)
    bad.close()
    unreachable = build_helpdesk(ZendeskSettings(base_url="http://127.0.0.1:9", email="x",
                                                 api_token=SecretStr("y"), timeout=2))
    with pytest.raises(HelpdeskError) as e:
        unreachable.push(snap)
    assert e.value.transient
    unreachable.close()


class _Receiver:
    def __init__(self, port: int, secret: bytes) -> None:
        self.got: list[tuple[dict[str, str], bytes, bool]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sig = dict(p.split("=", 1) for p in self.headers["X-Vigil-Signature"].split(","))
                want = hmac.new(secret, f"{sig['t']}.".encode() + body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(want, sig["v1"])
                outer.got.append((dict(self.headers), body, ok))
                self.send_response(204 if ok else 401)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_webhook_exporter_signs_each_change(free_port: int, sessions: sessionmaker[Session]) -> None:
    rx = _Receiver(free_port, b"s3cret")
    hook = WebhookExporter(WebhookHelpdeskSettings(url=f"http://127.0.0.1:{free_port}/hook",
                                                   secret=SecretStr("s3cret")))
    try:
        tid = _open(sessions)
        rep = sync_helpdesk(sessions, hook, NOW)
        assert (rep.pushed, rep.errors) == (1, [])
        headers, body, ok = rx.got[0]
        assert ok and headers["Content-Type"] == "application/json"
        data = json.loads(body)
        assert data["event"] == "ticket.updated" and data["ticket"]["id"] == tid
        assert data["ticket"]["priority"] == "P1" and "evidence" not in data["ticket"]
        assert headers["Idempotency-Key"].startswith(f"{tid}:")
        assert sync_helpdesk(sessions, hook, NOW).pushed == 0 and len(rx.got) == 1
        wrong = WebhookExporter(WebhookHelpdeskSettings(url=f"http://127.0.0.1:{free_port}/hook",
                                                        secret=SecretStr("other")))
        with sessions() as s:
            snap = TicketSnapshot.of(s.get(Ticket, tid))  # type: ignore[arg-type]
        with pytest.raises(HelpdeskError, match="HTTP 401"):
            wrong.push(snap)
        wrong.close()
    finally:
        hook.close()
        rx.server.shutdown()
        rx.server.server_close()
