"""The confirmation page, driven in headless Chromium, and its HTTP contract.

GET only shows (a mail scanner following the link changes nothing); only the button's POST acts;
"not me" leaves the account frozen and a P1 ticket open; tokens are single use.  A screenshot per
locale is kept under ``artifacts/screenshots/``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from alerts.store.models import AccountRow, AlertRow, ConfirmToken, Ticket
from tests.app.helpers import make_app, small_dir
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir
from vigil.web.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


class Served:
    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.base = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("web server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def site(db_url: str, tmp_path: Path, free_port: int) -> Iterator[tuple[Served, dict[str, list[str]]]]:
    app = make_app(db_url, web={"base_url": f"http://127.0.0.1:{free_port}"})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=5))
    scan_until_caught_up(app)
    links: dict[str, list[str]] = {}
    rep = deliver_once(app)
    while rep.claimed:
        for alert_id, _channel, link in rep.links:
            links.setdefault(alert_id, []).append(link)
        rep = deliver_once(app)
    with Served(app, free_port) as served:
        yield served, links
    app.close()


def _alert_for(app: Any, account: str, rule: str) -> AlertRow:
    with app.sessions() as s:
        return s.scalars(select(AlertRow).where(AlertRow.account_id == account, AlertRow.rule_id == rule)).one()


def test_get_changes_nothing_and_post_needs_the_form_token(site) -> None:  # type: ignore[no-untyped-def]
    served, links = site
    alert = _alert_for(served.app, "A1", "login-new-country")
    link = links[alert.id][0]
    for _ in range(3):  # a mail scanner fetching the link, repeatedly
        r = httpx.get(link)
        assert r.status_code == 200
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "A1-l9" not in r.text  # no internal ids leak; evidence is shown instead
        assert "Sao Paulo" in r.text
    with served.app.sessions() as s:
        assert s.get(AlertRow, alert.id).status in ("new", "notified")  # type: ignore[union-attr]
        assert s.get(AccountRow, "A1").status == "active"  # type: ignore[union-attr]
    forged = httpx.post(link, data={"answer": "deny", "csrf": "forged"})
    assert forged.status_code == 400
    with served.app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "active"  # type: ignore[union-attr]
    assert httpx.get(served.base + "/c/not-a-real-token").status_code == 404


@pytest.mark.browser
def test_not_me_in_the_browser_freezes_once_and_opens_a_p1_ticket(site, browser) -> None:  # type: ignore[no-untyped-def]
    served, links = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    shot = {}
    for account in ("A1", "A2", "A3", "A4", "A5"):
        alert = _alert_for(served.app, account, "login-new-country")
        page.goto(links[alert.id][0])
        lang = page.get_attribute("html", "lang")
        shot[account] = lang
        page.screenshot(path=str(ARTIFACTS / f"confirm-{lang}.png"), full_page=True)
        assert page.locator("[data-testid=deny]").is_visible()
        assert page.locator("[data-testid=anti-phishing]").inner_text().endswith(f"APC{int(account[1:]) - 1}")
    assert sorted(shot.values()) == ["en", "ja", "ko", "zh-CN", "zh-TW"]

    alert = _alert_for(served.app, "A1", "login-new-country")
    first, *others = links[alert.id]
    page.goto(first)
    page.click("[data-testid=deny]")
    page.wait_for_selector("[data-testid=result]")
    page.screenshot(path=str(ARTIFACTS / "confirm-ko-denied.png"), full_page=True)
    # the page says what happened: frozen, the request's reference, next steps, how support will call
    from tickets.surveys import ticket_ref

    with served.app.sessions() as s:
        ref = ticket_ref(str(s.get(AlertRow, alert.id).ticket_id))  # type: ignore[union-attr]
    assert ref in page.locator("[data-testid=ticket-ref]").inner_text()
    assert page.locator("[data-testid=frozen]").inner_text().strip()
    assert page.locator("[data-testid=next-steps] li").count() == 3
    with served.app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]
        tickets = s.scalars(select(Ticket).where(Ticket.account_id == "A1", Ticket.category == "account_security")
                            ).all()
        assert [t.priority for t in tickets] == ["P1"]
        assert s.get(AlertRow, alert.id).status == "denied"  # type: ignore[union-attr]
        used = s.scalars(select(ConfirmToken).where(ConfirmToken.alert_id == alert.id)).all()
        assert all(t.used_at is not None for t in used)
    # the same link again, or the alert's other links: gone, nothing more happens
    page.goto(first)
    assert page.locator("[data-testid=deny]").count() == 0
    for other in others:
        assert httpx.get(other).status_code == 410
    with served.app.sessions() as s:
        assert len(s.scalars(select(Ticket).where(Ticket.account_id == "A1",
                                                  Ticket.category == "account_security")).all()) == 1
    page.close()
