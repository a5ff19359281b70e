"""In Chromium: "it was me" on the email link, then "not me" by push and on the page.

The attacker holds the mailbox (an email link cannot confirm a high alert), the holder has the
phone: whichever order the answers come in, the account ends frozen once, with one P1 ticket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from alerts.store.models import AccountRow, AlertEvent, AlertRow, OutboxRow, Ticket
from notifiers.catalogue import lookup
from tests.app.helpers import make_app, small_dir
from tests.web.test_confirm_page import Served
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir
from vigil.web import push_actions
from vigil.web.i18n import pick


@pytest.fixture
def site(db_url: str, tmp_path: Path, free_port: int) -> Iterator[tuple[Served, dict[str, dict[str, str]]]]:
    app = make_app(db_url, web={"base_url": f"http://127.0.0.1:{free_port}"})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=2))
    scan_until_caught_up(app)
    links: dict[str, dict[str, str]] = {}  # alert -> channel -> link (the console stands in for all three)
    rep = deliver_once(app)
    while rep.claimed:
        for alert_id, channel, link in rep.links:
            links.setdefault(alert_id, {})[channel] = link
        rep = deliver_once(app)
    with Served(app, free_port) as served:
        yield served, links
    app.close()


def _alert(app: Any, account: str) -> AlertRow:
    with app.sessions() as s:
        return s.scalars(select(AlertRow).where(AlertRow.account_id == account,
                                                AlertRow.rule_id == "login-new-country")).one()


def _frozen_once(app: Any, account: str) -> None:
    with app.sessions() as s:
        assert s.get(AccountRow, account).status == "frozen"  # type: ignore[union-attr]
        tickets = s.scalars(select(Ticket).where(Ticket.account_id == account,
                                                 Ticket.category == "account_security")).all()
        assert [t.priority for t in tickets] == ["P1"]
        hooks = s.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.account_id == account, OutboxRow.channel == "freeze_hook"))
        assert hooks == 1


def _push(served: Served, link: str, action: str) -> httpx.Response:
    token = link.rsplit("/c/", 1)[1]
    return httpx.post(served.base + push_actions.PATH, json={"token": token, "action": action})


@pytest.mark.browser
def test_it_was_me_on_email_then_not_me_by_push_then_on_the_page(site: Any, page: Any) -> None:
    served, links = site
    alert = _alert(served.app, "A1")
    page.goto(links[alert.id]["email"])
    page.click("[data-testid=confirm]")
    page.wait_for_selector("[data-testid=result]")
    assert page.inner_text("[data-testid=result]") == pick("ko")[1]["noted"]  # A1 reads Korean
    assert page.locator("[data-testid=deny]").is_visible()  # "not me" is still offered
    with served.app.sessions() as s:
        assert s.get(AlertRow, alert.id).status in ("new", "notified")  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(AlertEvent).where(
            AlertEvent.alert_id == alert.id, AlertEvent.event == "answer_confirm_unverified")) == 1
    r = _push(served, links[alert.id]["push"], "deny")
    assert r.status_code == 200 and r.json()["status"] == "denied"
    _frozen_once(served.app, "A1")
    page.click("[data-testid=deny]")  # the holder presses "not me" on the page as well
    page.wait_for_selector("[data-testid=result]")
    assert page.inner_text("[data-testid=result]") == lookup("ko", "page.denied_title")
    _frozen_once(served.app, "A1")


@pytest.mark.browser
def test_it_was_me_on_email_then_not_me_on_the_page_then_by_push(site: Any, page: Any) -> None:
    served, links = site
    alert = _alert(served.app, "A2")
    page.goto(links[alert.id]["email"])
    page.click("[data-testid=confirm]")
    page.wait_for_selector("[data-testid=deny]")
    page.click("[data-testid=deny]")
    page.wait_for_selector("[data-testid=result]")
    assert page.inner_text("[data-testid=result]") == lookup("ja", "page.denied_title")  # A2 reads Japanese
    _frozen_once(served.app, "A2")
    r = _push(served, links[alert.id]["push"], "deny")
    assert r.status_code == 200 and r.json()["applied"] is False  # a harmless repeat
    assert httpx.get(links[alert.id]["sms"]).status_code == 410  # every other link is spent
    _frozen_once(served.app, "A2")
