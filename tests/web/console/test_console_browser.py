"""The console in real Chromium on the demo data, as a security analyst and a support agent use it.

Sign in; work a ticket from the queue to its resolution (the holder's survey is queued in their
language); a furious in-app message moves its ticket up a priority and flags it; freeze an account
and unfreeze it with a reason (admin); open a plot's table view and check that the drawn plot holds
exactly the table's numbers.  axe-core (``npm ci``) checks every page: no serious or critical
violations.  Screenshots in English and Simplified Chinese are kept under ``artifacts/console/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from alerts.store.models import AccountRow, OutboxRow, Survey, Ticket
from tests.conftest import in_ci, pick_free_port
from tests.web.console.helpers import PASSWORD
from tests.web.test_confirm_page import Served
from vigil.staff import add_staff

ROOT = Path(__file__).resolve().parents[3]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "artifacts" / "console"
MESSAGE_TOKEN = "message-token-for-the-browser-test-0123456789"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Any]]:
    from vigil.bootstrap import bootstrap
    from vigil.settings import load_settings
    from vigil_lab.demo import run_demo

    tmp = tmp_path_factory.mktemp("console-demo")
    port = pick_free_port()
    url = f"sqlite:///{tmp / 'demo.db'}"
    run_demo(db_url=url, data_dir=str(tmp / "data"), accounts=30, seed=7, serve=False, port=port)
    app = bootstrap(load_settings(None, database_url=url,
                                  web={"base_url": f"http://127.0.0.1:{port}",
                                       "message_tokens": {"app-backend": MESSAGE_TOKEN}}))
    with app.sessions.begin() as s:
        add_staff(s, "ana", PASSWORD, "analyst", now=app.clock(), display_name="Ana Analyst", actor="test")
        add_staff(s, "adam", PASSWORD, "admin", now=app.clock(), display_name="Adam Admin", locale="zh-CN",
                  actor="test")
    with Served(app, port) as served:
        yield served, app
    app.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        if in_ci():
            pytest.fail(f"{AXE} missing: run 'npm ci'")
        pytest.skip("axe-core is not installed: run 'npm ci'")
    return AXE.read_text(encoding="utf-8")


def check_a11y(page: Any, axe_source: str, name: str) -> None:
    """axe-core in the page (evaluated over the DevTools protocol: the page's CSP stays on)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {bad}"


def sign_in(browser: Any, base: str, user: str) -> Any:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/console/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button.primary")
    page.wait_for_url("**/console/alerts")
    page.errors = errors  # checked at the end of each test
    return page


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_page_in_english_and_chinese_passes_axe(browser: Any, demo: Any, axe_source: str) -> None:
    served, app = demo
    with app.sessions() as s:
        ticket = s.scalars(select(Ticket).order_by(Ticket.priority)).first()
        alert_id = s.scalars(select(OutboxRow.alert_id).where(OutboxRow.alert_id.is_not(None))).first()
        account = s.scalars(select(AccountRow.account_id).order_by(AccountRow.account_id)).first()
    assert ticket is not None and alert_id and account
    login = browser.new_page()
    login.goto(f"{served.base}/console/login")
    check_a11y(login, axe_source, "login")
    shot(login, "login-en")
    login.close()
    for user, lang in (("ana", "en"), ("adam", "zh-CN")):
        page = sign_in(browser, served.base, user)
        assert page.get_attribute("html", "lang") == lang
        for name, path in (("alerts", "/console/alerts"), ("alert", f"/console/alerts/{alert_id}"),
                           ("account", f"/console/accounts/{account}"), ("tickets", "/console/tickets"),
                           ("ticket", f"/console/tickets/{ticket.id}"), ("rules", "/console/rules"),
                           ("delivery", "/console/delivery"), ("surveys", "/console/surveys"),
                           ("audit", "/console/audit")):
            if name == "audit" and user != "adam":
                continue
            page.goto(served.base + path)
            page.wait_for_load_state("networkidle")
            check_a11y(page, axe_source, f"{name} ({lang})")
            shot(page, f"{name}-{lang}")
        assert page.errors == [], page.errors
        page.context.close()


def test_a_plot_draws_exactly_its_table_view(browser: Any, demo: Any) -> None:
    served, _app = demo
    page = sign_in(browser, served.base, "ana")
    for path in ("/console/rules", "/console/delivery"):
        page.goto(served.base + path)
        page.wait_for_function("() => document.querySelector('.plot .main-svg') !== null")
        chart = page.locator("details.tableview").first
        chart.locator("summary").click()
        table = chart.locator("table")
        assert table.is_visible()
        cols = table.locator("thead th").all_inner_texts()
        rows = [r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all()]
        assert rows, f"{path}: the demo data has figures"
        spec = {k: chart.get_attribute(f"data-{k}") for k in ("x", "y", "series")}
        keys = page.eval_on_selector_all("details.tableview table thead th", "els => els.map(e => e.dataset.col)")
        cid = chart.get_attribute("data-chart")
        drawn = page.evaluate("id => document.getElementById('plot-' + id).data.map(t => [t.name, t.x, t.y])", cid)
        x, ys, series = spec["x"], [c for c in (spec["y"] or "").split(",") if c], spec["series"]
        idx = {k: i for i, k in enumerate(keys[:len(cols)])}
        from vigil.web.console.charts import fmt_cell

        got = [[[fmt_cell(v) for v in t[1]], [fmt_cell(v) for v in t[2]]] for t in drawn]
        if series:
            names = list(dict.fromkeys(r[idx[series]] for r in rows))
            want = [[[r[idx[x]] for r in rows if r[idx[series]] == n], [r[idx[ys[0]]] for r in rows
                                                                          if r[idx[series]] == n]] for n in names]
        else:
            want = [[[r[idx[x]] for r in rows], [r[idx[y]] for r in rows]] for y in ys]
        assert got == want, path
    assert page.errors == []
    page.context.close()


def test_work_a_ticket_from_the_queue_to_resolution(browser: Any, demo: Any) -> None:
    served, app = demo
    page = sign_in(browser, served.base, "ana")
    page.goto(f"{served.base}/console/tickets")
    row = page.locator("#ticket-queue tbody tr").first
    ticket_id = row.get_attribute("data-ticket")
    assert page.locator(".countdown").first.inner_text().endswith(("left", "overdue"))  # the live clock ticks
    row.locator("a").first.click()
    page.fill("#assignee", "")
    page.click("form[action$='/assign'] button")
    assert page.locator("[data-testid=ticket-assignee]").inner_text() == "ana"
    page.select_option("#code", "risk_confirmed")
    page.fill("#resolve-note", "holder confirmed the takeover by phone")
    page.click("form[action$='/resolve'] button")
    assert page.locator("[data-testid=ticket-status]").inner_text().startswith("resolved")
    with app.sessions() as s:
        t = s.get(Ticket, ticket_id)
        acct = s.get(AccountRow, t.account_id)  # type: ignore[union-attr]
        survey = s.scalars(select(Survey).where(Survey.ticket_id == ticket_id)).one()
    assert t is not None and t.resolution_code == "risk_confirmed" and t.assignee == "ana"
    assert acct is not None and survey.locale == (t.locale or acct.locale)
    if acct.status != "frozen":  # a frozen holder's survey waits for the unfreeze
        assert survey.status == "queued"
    assert "queued" in page.locator("[data-testid=ticket-survey]").inner_text() or survey.status == "held"
    shot(page, "ticket-resolved-en")
    page.context.close()


def test_a_furious_message_moves_its_ticket_up_and_flags_it(browser: Any, demo: Any) -> None:
    served, app = demo
    with app.sessions() as s:
        acct = s.scalars(select(AccountRow).where(AccountRow.locale == "zh-CN")).first()
    assert acct is not None
    calm = httpx.post(f"{served.base}/api/messages", headers={"Authorization": f"Bearer {MESSAGE_TOKEN}"}, timeout=120,
                      json={"account_id": acct.account_id, "text": "请问我的提现什么时候到账？", "message_id": "app-1"})
    assert calm.status_code == 201, calm.text
    before = calm.json()["priority"]
    angry = httpx.post(f"{served.base}/api/messages", headers={"Authorization": f"Bearer {MESSAGE_TOKEN}"}, timeout=120,
                       json={"account_id": acct.account_id, "message_id": "app-2",
                             "text": "太离谱了！提现三天了还没到账，没人回复，我要报警并找律师！"})
    body = angry.json()
    order = ["P1", "P2", "P3", "P4"]
    assert body["ticket_id"] == calm.json()["ticket_id"]
    assert order.index(body["priority"]) == max(0, order.index(before) - 1)
    assert body["flag"] and body["ref"] in body["acknowledgement"] and "已收到" in body["acknowledgement"]
    page = sign_in(browser, served.base, "ana")
    page.goto(f"{served.base}/console/tickets?flagged=1")
    flagged = page.locator(f"tr[data-ticket='{body['ticket_id']}']")
    assert flagged.locator(".flag").is_visible()
    assert flagged.locator(".prio").inner_text() == body["priority"]
    page.context.close()


def test_freeze_then_unfreeze_with_a_reason(browser: Any, demo: Any, axe_source: str) -> None:
    served, app = demo
    with app.sessions() as s:
        account = s.scalars(select(AccountRow.account_id).where(AccountRow.status == "active")
                            .order_by(AccountRow.account_id.desc())).first()
    analyst = sign_in(browser, served.base, "ana")
    analyst.goto(f"{served.base}/console/accounts/{account}")
    analyst.fill("#freeze-reason", "holder called: phone stolen")
    analyst.click("form[action$='/freeze'] button")
    assert "frozen" in analyst.locator("[data-testid=account-status]").inner_text()
    assert analyst.locator("#unfreeze-reason").count() == 0  # analysts cannot unfreeze
    analyst.context.close()
    admin = sign_in(browser, served.base, "adam")
    admin.goto(f"{served.base}/console/accounts/{account}")
    admin.fill("#unfreeze-reason", "身份已通过视频核实")
    admin.click("form[action$='/unfreeze'] button")
    admin.wait_for_selector("[data-testid=account-msg]")
    check_a11y(admin, axe_source, "account after unfreeze (zh-CN)")
    shot(admin, "account-unfrozen-zh-CN")
    with app.sessions() as s:
        assert s.get(AccountRow, account).status == "active"  # type: ignore[union-attr]
    assert "身份已通过视频核实" in admin.locator("#timeline").inner_text()
    admin.context.close()


@pytest.mark.skipif(os.environ.get("VIGIL_SKIP_SURVEY_PAGE") == "1", reason="opt-out for quick runs")
def test_the_survey_page_passes_axe(browser: Any, demo: Any, axe_source: str) -> None:
    from alerts.tokens import hash_token, new_token

    served, app = demo
    with app.sessions.begin() as s:
        sv = s.scalars(select(Survey).where(Survey.status == "queued")).first()
        if sv is None:
            pytest.skip("no queued survey yet (runs after the ticket test)")
        token = new_token()
        sv.token_hash = hash_token(token)
    page = browser.new_page()
    page.goto(f"{served.base}/s/{token}")
    check_a11y(page, axe_source, "survey page")
    shot(page, f"survey-{page.get_attribute('html', 'lang')}")
    page.close()
