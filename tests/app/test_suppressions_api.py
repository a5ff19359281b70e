"""Declaring suppressions: the exchange's backend over the API, staff on the command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.store.models import AlertRow
from tests.app.helpers import make_app, small_dir
from vigil.cli import main
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir
from vigil.web.app import create_app

TOKEN = "backend-feed-0123456789abcdef-0123456789"


def test_declared_travel_notice_and_allow_listed_address_mute_alerts(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url, web={"suppression_tokens": {"exchange-backend": TOKEN}},
                   suppressions={"allowlist_step_up": True})  # address suppressions may mute transfer rules
    client = TestClient(create_app(app))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/suppressions", json={}).status_code == 401
    r = client.post("/api/suppressions", headers=auth, json={
        "account_id": "A1", "kind": "travel", "countries": ["br"],
        "starts_at": "2026-03-05T00:00:00Z", "expires_at": "2026-03-12T00:00:00Z"})
    assert r.status_code == 201 and r.json()["value"] == {"countries": ["BR"]}
    assert r.json()["created_by"] == "api:exchange-backend"  # the token's name, not the body's
    bad = client.post("/api/suppressions", headers=auth, json={
        "account_id": "A1", "kind": "travel", "countries": ["Brazil"],
        "starts_at": "2026-03-05T00:00:00Z", "expires_at": "2027-03-12T00:00:00Z"})
    assert bad.status_code == 422 and "alpha-2" in bad.text
    r = client.post("/api/suppressions", headers=auth, json={
        "account_id": "A2", "kind": "address", "address": "0xattacker",
        "starts_at": "2026-03-01T00:00:00Z", "expires_at": "2026-04-01T00:00:00Z"})
    assert r.status_code == 201
    # staff see them on the command line (which uses the real clock: both have expired by now)
    res = CliRunner().invoke(main, ["suppressions", "list", "--all"], env={"VIGIL_DATABASE_URL": db_url})
    assert res.exit_code == 0, res.output
    assert [line.count('"kind"') for line in res.output.splitlines()] == [1, 1]
    refused = CliRunner().invoke(main, ["suppressions", "add", "--account", "A3", "--travel", "JP",
                                        "--from", "2026-03-01T00:00:00+00:00", "--until", "2026-03-01"],
                                 env={"VIGIL_DATABASE_URL": db_url})
    assert refused.exit_code == 1 and "need a UTC offset" in refused.output

    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=2))
    scan_until_caught_up(app)
    with app.sessions() as s:
        status = {(a.account_id, a.rule_id): a.status for a in s.scalars(select(AlertRow))}
    assert status[("A1", "login-new-country")] == "suppressed"
    assert status[("A2", "login-new-country")] != "suppressed"
    assert status[("A2", "withdrawal-large")] == "suppressed"  # to the allow-listed address
    assert status[("A1", "withdrawal-large")] != "suppressed"
    app.close()
