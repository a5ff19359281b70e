"""``vigil --db``, the line that names an unconfigured database, and ``vigil accounts``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from alerts.answers import answer
from alerts.store.models import AlertRow
from tests.app.helpers import make_app, small_dir
from vigil.cli import main
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir


def _runner() -> CliRunner:
    return CliRunner()  # click >= 8.2: r.output has stdout and stderr, r.stdout and r.stderr each


@pytest.fixture
def frozen_db(tmp_path: Path) -> str:
    """A SQLite database where A1 answered "not me" (frozen) and A2 has open alerts."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    app = make_app(url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=2))
    scan_until_caught_up(app)
    with app.sessions.begin() as s:
        alert = s.scalars(select(AlertRow).where(AlertRow.rule_id == "login-new-country",
                                                 AlertRow.account_id == "A1")).one()
        answer(s, alert.id, "deny", channel="link:email", now=app.clock())
    app.close()
    return url


def test_without_any_database_setting_the_command_says_which_database_it_opened(tmp_path: Path,
                                                                                monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    r = _runner().invoke(main, ["alerts", "list"])
    assert r.exit_code == 0, r.output
    note = r.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("vigil: no database configured (--db URL, VIGIL_DATABASE_URL")
    assert f"using sqlite:///vigil.db, a new file {tmp_path / 'vigil.db'}" in note[0]
    r = _runner().invoke(main, ["alerts", "list"])
    assert f"the file {tmp_path / 'vigil.db'}" in r.stderr  # the second time it exists
    for args, env in ((["--db", f"sqlite:///{tmp_path / 'x.db'}", "alerts", "list"], {}),
                      (["alerts", "list"], {"VIGIL_DATABASE_URL": f"sqlite:///{tmp_path / 'y.db'}"})):
        r = _runner().invoke(main, args, env=env)
        assert r.exit_code == 0 and r.stderr == "", r.stderr
    assert (tmp_path / "x.db").exists() and (tmp_path / "y.db").exists()


def test_db_option_wins_over_the_environment(frozen_db: str, tmp_path: Path) -> None:
    env = {"VIGIL_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    r = _runner().invoke(main, ["--db", frozen_db, "alerts", "list", "--account", "A1"], env=env)
    assert r.exit_code == 0 and "login-new-country" in r.output, r.output
    r = _runner().invoke(main, ["alerts", "list", "--account", "A1"], env=env)
    assert r.exit_code == 0 and r.output == ""


def test_accounts_show_list_and_unfreeze(frozen_db: str) -> None:
    run = _runner()
    r = run.invoke(main, ["--db", frozen_db, "accounts", "show", "A1"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "A1  FROZEN"
    assert lines[1].startswith("  frozen 20") and " UTC by the account holder: denied on alert a_" in lines[1]
    assert "locale ko, time zone Asia/Seoul" in r.output and "reachable by email, phone" in r.output
    assert "open alerts (" in r.output and "tickets (" in r.output and " P1 " in r.output
    logins = lines[lines.index("last logins (5):") + 1:][:5]
    assert logins[0].split()[:4] == ["2026-03-07", "08:00", "UTC", "ok"] and "BR Sao Paulo" in logins[0]
    assert "200.1.1.1" in logins[0] and "(evil)" in logins[0]
    trail = lines[lines.index("audit trail:") + 1]
    assert trail.startswith("  20") and " frozen    by the account holder: denied on alert a_" in trail
    assert 'to unfreeze: vigil accounts unfreeze A1 --reason "..."' in r.output

    r = run.invoke(main, ["--db", frozen_db, "accounts", "list", "--frozen"])
    assert r.exit_code == 0 and r.output.splitlines()[0].split()[:2] == ["A1", "frozen"], r.output

    r = run.invoke(main, ["--db", frozen_db, "accounts", "unfreeze", "A1"])
    assert r.exit_code == 2 and "Missing option '--reason'" in r.stderr
    r = run.invoke(main, ["--db", frozen_db, "accounts", "unfreeze", "A1", "--reason", " "])
    assert r.exit_code == 1 and r.stderr.strip() == ("vigil: an unfreeze needs a reason (--reason): "
                                                     "it is kept in the account's audit trail")
    r = run.invoke(main, ["--db", frozen_db, "accounts", "unfreeze", "A1", "--reason", "called the holder",
                          "--as", "kim"])
    assert r.exit_code == 0, r.stderr
    assert r.output.startswith("A1: unfrozen by staff:kim (it was frozen 20")
    assert "by the account holder: denied on alert" in r.output
    r = run.invoke(main, ["--db", frozen_db, "accounts", "unfreeze", "A1", "--reason", "again"])
    assert r.exit_code == 1 and "'A1' is not frozen (status active); nothing to unfreeze" in r.stderr
    assert "Traceback" not in r.output + r.stderr

    r = run.invoke(main, ["--db", frozen_db, "accounts", "show", "A1", "--json"])
    data = json.loads(r.output)
    assert data["status"] == "active" and data["freeze"] is None
    assert [(e["event"], e["actor"]) for e in data["trail"]] == [("unfrozen", "staff:kim"), ("frozen", "user")]
    assert data["trail"][0]["reason"] == "called the holder"

    r = run.invoke(main, ["--db", frozen_db, "accounts", "show", "nobody"])
    assert r.exit_code == 1 and "no account 'nobody'" in r.stderr


def test_last_logins_come_from_the_source_through_its_mapping(tmp_path: Path) -> None:
    """Files, and an external database with its own names: newest first by ts (ISO or epoch ms)."""
    from sqlalchemy import create_engine, text

    from vigil.accounts import recent_logins
    from vigil.settings import SourceSettings
    from vigil.sources import FileSource, SqlSource

    data = small_dir(tmp_path / "data", bad_row=False, accounts=2)
    got = recent_logins(FileSource(data), "A2", 3)
    assert [x["ts"][:10] for x in got] == ["2026-03-07", "2026-03-05", "2026-03-04"]
    assert got[0]["city"] == "Sao Paulo" and got[0]["device_id"] == "evil"
    assert recent_logins(FileSource(data), "nobody") == []

    ext = create_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    with ext.begin() as c:
        c.execute(text("CREATE TABLE user_logins (id INTEGER PRIMARY KEY, uid TEXT, login_time TEXT, ok TEXT, "
                       "ip_address TEXT)"))
        c.execute(text("INSERT INTO user_logins (uid, login_time, ok, ip_address) VALUES "
                       "('u1', '1772352000000', 'true', '10.0.0.1'), ('u1', '2026-03-02T08:00:00Z', 'true', "
                       "'10.0.0.2'), ('u2', '2026-03-03T08:00:00Z', 'false', '10.0.0.3')"))
    settings = SourceSettings(kind="sql", tables={"logins": {
        "table": "user_logins", "cursor": "id",
        "columns": {"account_id": "uid", "ts": "login_time", "success": "ok", "ip": "ip_address"}}})
    got = recent_logins(SqlSource(ext, settings), "u1")
    assert [(x["ts"][:16], x["ip"], x["success"]) for x in got] == [
        ("2026-03-02T08:00", "10.0.0.2", "true"), ("2026-03-01T08:00", "10.0.0.1", "true")]
    ext.dispose()
