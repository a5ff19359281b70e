"""After "not me": the exchange's freeze hook is called (signed, retried until 2xx), or Vigil's own status is
the freeze; staff escalations reach the staff hook or the log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alerts.answers import answer
from alerts.store.models import AlertRow, Delivery, OutboxRow
from notifiers.webhook import verify
from tests.app.helpers import Clock, make_app, small_dir
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir

SECRET = "freeze-hook-secret-0123456789abcdef0123"


class AccountService:
    """The exchange's account service: refuses the first call (503), then freezes."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.verified: list[bool] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.verified.append(verify(SECRET, dict(self.headers), body, now=time.time()))
                outer.calls.append(json.loads(body))
                self.send_response(503 if len(outer.calls) == 1 else 200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/freeze"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def service() -> Iterator[AccountService]:
    svc = AccountService()
    yield svc
    svc.server.shutdown()


def _deny_first_alert(app: Any) -> str:
    with app.sessions.begin() as s:
        alert = s.scalars(select(AlertRow).where(AlertRow.rule_id == "login-new-country")).first()
        assert alert is not None
        answer(s, alert.id, "deny", channel="link:email", now=app.clock())
        return str(alert.id)


def test_freeze_hook_is_signed_and_retried_until_the_service_answers(db_url: str, tmp_path: Path,
                                                                     service: AccountService) -> None:
    clock = Clock()
    app = make_app(db_url, clock=clock, hooks={"freeze": {"enabled": True, "url": service.url, "secret": SECRET}})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    deliver_once(app)
    alert_id = _deny_first_alert(app)
    deliver_once(app)
    with app.sessions() as s:
        hook = s.scalars(select(OutboxRow).where(OutboxRow.channel == "freeze_hook")).one()
        assert hook.status == "retry"
    clock.advance(hours=1)
    deliver_once(app)
    with app.sessions() as s:
        hook = s.scalars(select(OutboxRow).where(OutboxRow.channel == "freeze_hook")).one()
        assert hook.status == "delivered"
        assert [d.status for d in s.scalars(select(Delivery).where(Delivery.outbox_id == hook.id)
                                            .order_by(Delivery.attempt))] == ["transient", "delivered"]
    assert all(service.verified) and len(service.calls) == 2
    assert service.calls[-1]["account_id"] == "A1" and service.calls[-1]["alert_id"] == alert_id
    app.close()


def test_without_a_hook_the_builtin_status_is_the_freeze(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    _deny_first_alert(app)
    deliver_once(app)
    with app.sessions() as s:
        hook = s.scalars(select(OutboxRow).where(OutboxRow.channel == "freeze_hook")).one()
        assert hook.status == "delivered" and hook.provider_id == "builtin"
    app.close()


def test_a_rules_named_webhook_action_posts_to_that_webhook(db_url: str, tmp_path: Path,
                                                            service: AccountService) -> None:
    import shutil

    from rules.loader import DEFAULT_PACK

    pack = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, pack)
    # withdrawal-risk-high and withdrawal-large: the live withdrawal questions with on_match; they group
    # by family, so the withdrawal gets one alert (whichever of the two asks) and one webhook call
    for name in ("transfers_risk.yaml", "transfers.yaml"):
        f = pack / name
        text = f.read_text()
        assert "    on_match:\n" in text
        f.write_text(text.replace("    on_match:\n", "    on_match:\n      - webhook: {name: risk-engine}\n", 1))
    clock = Clock()
    app = make_app(db_url, clock=clock, rules_path=str(pack),
                   hooks={"named": {"risk-engine": {"enabled": True, "url": service.url, "secret": SECRET}}})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    deliver_once(app)
    clock.advance(hours=1)  # the service refuses the first call: retried
    deliver_once(app)
    assert all(service.verified) and len(service.calls) == 2
    assert service.calls[-1]["data"]["target"] == "risk-engine"
    with app.sessions() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.channel == "webhook")).one()
        assert row.status == "delivered"
    app.close()


def test_an_unfreeze_tells_the_account_service_through_the_same_hook(db_url: str, tmp_path: Path,
                                                                      service: AccountService) -> None:
    from alerts.accounts import unfreeze_account

    clock = Clock()
    app = make_app(db_url, clock=clock, hooks={"freeze": {"enabled": True, "url": service.url, "secret": SECRET}})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    deliver_once(app)
    alert_id = _deny_first_alert(app)
    deliver_once(app)  # the service refuses the first call (503) ...
    clock.advance(hours=1)
    deliver_once(app)  # ... and takes the retry
    with app.sessions.begin() as s:
        unfreeze_account(s, "A1", now=clock(), actor="staff:kim", reason="holder verified")
    deliver_once(app)
    with app.sessions() as s:
        hooks = s.scalars(select(OutboxRow).where(OutboxRow.channel == "freeze_hook")).all()
        assert sorted((h.purpose, h.status) for h in hooks) == [("freeze", "delivered"), ("unfreeze", "delivered")]
    assert all(service.verified)
    actions = [(c["data"]["action"], c["account_id"], c["alert_id"]) for c in service.calls]
    assert actions == [("freeze", "A1", alert_id), ("freeze", "A1", alert_id), ("unfreeze", "A1", alert_id)]
    last = service.calls[-1]["data"]
    assert last["reason"] == "holder verified" and last["actor"] == "staff:kim"
    app.close()
