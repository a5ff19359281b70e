"""The console over HTTP (Starlette's client against the real app and a real database): sign-in and
its cookies, CSRF on every form, roles, the audit log, and plots that equal their table views."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts.store.models import AccountRow, AlertEvent, AlertRow, StaffAudit
from tests.web.console.helpers import PASSWORD, console_app, plotted_as_table, tables, traces_as_cells
from vigil.web.app import create_app


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Any:
    a = console_app(db_url, tmp_path)
    yield a
    a.close()


def login(app: Any, user: str, password: str = PASSWORD) -> TestClient:
    c = TestClient(create_app(app), follow_redirects=False)
    page = c.get("/console/login")
    pre = re.search(r'name="pre" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = c.post("/console/login", data={"username": user, "password": password, "pre": pre, "next": "/console/alerts"})
    assert r.status_code == 303, r.text
    return c


def csrf(c: TestClient, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).text).group(1)  # type: ignore[union-attr]


def audit_rows(app: Any, action: str) -> list[StaffAudit]:
    with app.sessions() as s:
        return list(s.scalars(select(StaffAudit).where(StaffAudit.action == action)))


def test_pages_need_a_session_and_sign_in_needs_its_form_token(app: Any) -> None:
    c = TestClient(create_app(app), follow_redirects=False)
    r = c.get("/console/tickets?queue=security")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=%2Fconsole%2Ftickets")
    # a cross-site POST cannot know the login form's token
    assert c.post("/console/login", data={"username": "ana", "password": PASSWORD, "pre": "x"}).status_code == 400
    page = c.get("/console/login")
    pre = re.search(r'name="pre" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    bad = c.post("/console/login", data={"username": "ana", "password": "wrong password!", "pre": pre})
    assert bad.status_code == 401 and "vigil_console=" not in bad.headers.get("set-cookie", "")
    ok = c.post("/console/login", data={"username": "ana", "password": PASSWORD, "pre": pre})
    cookie = ok.headers["set-cookie"]
    assert ok.status_code == 303 and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie.split("vigil_console_pre")[0]  # development: plain http on loopback
    assert [a.actor for a in audit_rows(app, "login_failed")] == ["staff:ana"]
    assert [a.actor for a in audit_rows(app, "login")] == ["staff:ana"]
    assert "default-src 'self'" in c.get("/console/alerts").headers["content-security-policy"]


def test_cookies_are_secure_outside_development(db_url: str, tmp_path: Path) -> None:
    a = console_app(db_url, tmp_path, web={"base_url": "https://alerts.exchange.example"})
    try:
        c = TestClient(create_app(a), base_url="https://testserver", follow_redirects=False)
        page = c.get("/console/login")
        assert "Secure" in page.headers["set-cookie"]
        pre = re.search(r'name="pre" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        ok = c.post("/console/login", data={"username": "ana", "password": PASSWORD, "pre": pre})
        assert "Secure" in ok.headers["set-cookie"]
    finally:
        a.close()


def test_five_wrong_passwords_lock_the_account(app: Any) -> None:
    from vigil.staff import authenticate

    for _ in range(5):
        with app.sessions.begin() as s:
            assert authenticate(s, "adam", "not the password", now=app.clock()) is None
    with app.sessions.begin() as s:
        assert authenticate(s, "adam", PASSWORD, now=app.clock()) is None  # right password, but locked
    app.clock.advance(minutes=16)
    with app.sessions.begin() as s:
        who = authenticate(s, "adam", PASSWORD, now=app.clock())
        assert who is not None and who.role == "admin"
    assert len(audit_rows(app, "login_failed")) == 6


def test_every_page_loads_with_real_figures(app: Any) -> None:
    c = login(app, "adam")
    with app.sessions() as s:
        n_alerts = s.scalar(select(func.count()).select_from(AlertRow))
        alert = s.scalars(select(AlertRow).where(AlertRow.account_id == "A1")).first()
    assert n_alerts and alert is not None
    assert f">{n_alerts} alert(s)<" in c.get("/console/alerts").text
    for path in ("/console/tickets", "/console/rules", "/console/delivery", "/console/surveys", "/console/audit",
                 f"/console/alerts/{alert.id}", "/console/accounts/A1"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
    detail = c.get(f"/console/alerts/{alert.id}").text
    assert alert.rule_id in detail and 'id="messages"' in detail and "delivered" in detail
    account = c.get("/console/accounts/A1").text
    assert "Sao Paulo" in account and "login-new-country" in account


def test_every_form_needs_its_csrf_token_and_the_role(app: Any) -> None:
    with app.sessions() as s:
        ids = list(s.scalars(select(AlertRow.id).limit(2)))
    viewer = login(app, "vera")
    tok = csrf(viewer, "/console/alerts")
    assert viewer.post("/console/alerts/ack", data={"csrf": tok, "alert_id": ids}).status_code == 403
    analyst = login(app, "ana")
    assert analyst.post("/console/alerts/ack", data={"alert_id": ids}).status_code == 400  # no token
    assert analyst.post("/console/alerts/ack", data={"csrf": tok, "alert_id": ids}).status_code == 400  # another's
    ok = analyst.post("/console/alerts/ack", data={"csrf": csrf(analyst, "/console/alerts"), "alert_id": ids})
    assert ok.status_code == 303
    with app.sessions() as s:
        acked = set(s.scalars(select(AlertEvent.alert_id).where(AlertEvent.event == "acknowledged",
                                                                AlertEvent.actor == "staff:ana")))
    assert acked == set(ids)
    assert [a.detail["alert_ids"] for a in audit_rows(app, "alerts_acknowledge")] == [sorted(ids)]


def test_freeze_needs_an_analyst_and_unfreeze_an_admin_with_a_reason(app: Any) -> None:
    analyst, admin = login(app, "ana"), login(app, "adam")
    r = analyst.post("/console/accounts/A3/freeze", data={"csrf": csrf(analyst, "/console/accounts/A3"),
                                                           "reason": "call from the holder: phone stolen"})
    assert r.status_code == 303
    with app.sessions() as s:
        assert s.get(AccountRow, "A3").status == "frozen"  # type: ignore[union-attr]
    tok = csrf(analyst, "/console/accounts/A3")
    assert analyst.post("/console/accounts/A3/unfreeze", data={"csrf": tok, "reason": "verified"}).status_code == 403
    tok = csrf(admin, "/console/accounts/A3")
    r = admin.post("/console/accounts/A3/unfreeze", data={"csrf": tok, "reason": " "})
    assert r.headers["location"].endswith("msg=reason_needed")
    r = admin.post("/console/accounts/A3/unfreeze", data={"csrf": tok, "reason": "holder verified by video call"})
    assert r.headers["location"].endswith("msg=unfrozen")
    with app.sessions() as s:
        assert s.get(AccountRow, "A3").status == "active"  # type: ignore[union-attr]
    assert [(a.actor, a.detail["reason"]) for a in audit_rows(app, "unfreeze")] == [
        ("staff:adam", "holder verified by video call")]
    assert "holder verified by video call" in admin.get("/console/accounts/A3").text  # on the timeline


@pytest.mark.parametrize("page", ["rules", "delivery", "surveys", "accounts/A1"])
def test_each_plot_draws_exactly_its_table_and_the_csv_says_the_same(app: Any, page: str) -> None:
    c = login(app, "ana")
    got = tables(c.get(f"/console/{page}").text)
    assert got, "no plots on the page"
    drawn = 0
    for cid, t in got.items():
        if t["figure"] is None:  # no rows: no plot, an empty table
            assert t["rows"] == []
            continue
        expected = [(x, y) for _name, x, y in plotted_as_table(t)]
        assert traces_as_cells(t["figure"]) == expected, cid
        drawn += 1
        url = "/console/accounts/A1/logins-map.csv" if page.startswith("accounts") else f"/console/{page}/{cid}.csv"
        rows = list(csv.reader(io.StringIO(c.get(url).text)))
        from vigil.web.console.charts import fmt_cell

        assert rows[0] == t["columns"]
        assert [[fmt_cell(_num(v)) for v in r] for r in rows[1:]] == t["rows"], cid
    if page in ("rules", "delivery"):  # (the small data set's logins carry no coordinates: no map)
        assert drawn, "the small data set has alerts and messages to plot"


def _num(v: str) -> Any:
    if v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f == int(f) and "." not in v else f


def test_the_alert_queue_filters_by_each_field_and_counts_what_it_shows(app: Any) -> None:
    """Rule, severity, status, locale, segment and acknowledged: each filter shows exactly the alerts
    the database holds for it, alone and combined (issue 15 point 2)."""
    from alerts.store.models import AccountRow as Acc

    c = login(app, "ana")
    with app.sessions() as s:
        rows = s.execute(select(AlertRow.id, AlertRow.rule_id, AlertRow.severity, AlertRow.status, Acc.locale,
                                Acc.tier).join(Acc, Acc.account_id == AlertRow.account_id, isouter=True)).all()
    assert len(rows) > 3
    one = rows[0]
    cases = {"rule": ("rule_id", one.rule_id), "severity": ("severity", one.severity),
             "status": ("status", one.status), "locale": ("locale", one.locale), "segment": ("tier", one.tier)}
    for param, (field, value) in cases.items():
        if not value:
            continue
        want = sum(1 for r in rows if getattr(r, field) == value)
        page = c.get("/console/alerts", params={param: value})
        assert page.status_code == 200 and f">{want} alert(s)<" in page.text, (param, value, want)
    both = sum(1 for r in rows if r.rule_id == one.rule_id and r.severity == one.severity)
    assert f">{both} alert(s)<" in c.get("/console/alerts", params={"rule": one.rule_id,
                                                                      "severity": one.severity}).text
    assert ">0 alert(s)<" in c.get("/console/alerts", params={"rule": "no-such-rule"}).text
    tok = csrf(c, "/console/alerts")
    assert c.post("/console/alerts/ack", data={"csrf": tok, "alert_id": [one.id]}).status_code == 303
    assert ">1 alert(s)<" in c.get("/console/alerts", params={"acked": "yes"}).text
    assert f">{len(rows) - 1} alert(s)<" in c.get("/console/alerts", params={"acked": "no"}).text


def test_a_dead_letter_is_retried_once_from_the_delivery_page(app: Any) -> None:
    """The retry button queues a new message (the dead one stays as history and points at it), writes
    the audit log, needs an analyst and its form token, and a second click does nothing."""
    from alerts.store.models import OutboxRow

    with app.sessions.begin() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.status == "delivered").limit(1)).one()
        row.status = "dead"
        dead_id = row.id
    viewer, analyst = login(app, "vera"), login(app, "ana")
    page = analyst.get("/console/delivery")
    assert dead_id in page.text and f"/console/delivery/retry/{dead_id}" in page.text
    assert viewer.post(f"/console/delivery/retry/{dead_id}",
                       data={"csrf": csrf(viewer, "/console/delivery")}).status_code == 403
    assert analyst.post(f"/console/delivery/retry/{dead_id}", data={}).status_code == 400  # no form token
    r = analyst.post(f"/console/delivery/retry/{dead_id}", data={"csrf": csrf(analyst, "/console/delivery")})
    assert r.status_code == 303 and r.headers["location"].endswith("msg=retried")
    with app.sessions() as s:
        dead = s.get(OutboxRow, dead_id)
        assert dead is not None and dead.status == "dead"
        new = s.get(OutboxRow, dead.payload["requeued_as"])
        assert new is not None and new.status == "pending" and new.payload["retry_of"] == dead_id
        assert (new.channel, new.template, new.account_id) == (dead.channel, dead.template, dead.account_id)
    again = analyst.post(f"/console/delivery/retry/{dead_id}", data={"csrf": csrf(analyst, "/console/delivery")})
    assert again.headers["location"].endswith("msg=refused")
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.payload["retry_of"].as_string() == dead_id)) == 1
    assert [a.target_id for a in audit_rows(app, "dead_letter_retry")] == [dead_id]
