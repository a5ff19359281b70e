"""Rows the database refuses although validation let them through are isolated, quarantined, and the
scan goes on (issue 14.1: "if a write still fails, bisect the batch").

The refusal is real: a trigger in the engine's database, on SQLite and on PostgreSQL, refuses one
account's mirror row or every finding of one account -- a rule an operator's DBA could add.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from alerts.store.models import AlertRow, Cursor, FindingRow, QuarantineRow
from tests.app.helpers import make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir


def _refuse(app, table: str, condition: str, name: str) -> None:  # type: ignore[no-untyped-def]
    with app.engine.begin() as c:
        if app.engine.dialect.name == "sqlite":
            c.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} "
                           f"BEGIN SELECT RAISE(ABORT, '{name}: refused by policy'); END"))
        else:
            c.execute(text(f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN IF {condition} THEN "
                           f"RAISE EXCEPTION '{name}: refused by policy' USING ERRCODE = '23514'; END IF; "
                           f"RETURN NEW; END $$ LANGUAGE plpgsql"))
            c.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"))


def test_a_refused_account_row_is_quarantined_and_its_events_still_scanned(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False))
    _refuse(app, "vigil_accounts", "NEW.email = 'a2@example.com'", "hold_a2")
    totals = scan_until_caught_up(app)
    assert totals["caught_up"] and totals["rows"] == 42
    with app.sessions() as s:
        q = s.scalars(select(QuarantineRow)).all()
        alerted = {a.account_id for a in s.scalars(select(AlertRow))}
        moved = {c.source for c in s.scalars(select(Cursor)) if c.state.get("pos")}
    assert moved == {"sql:logins", "sql:transactions", "sql:positions"}  # every cursor with rows moved
    assert [(r.source, r.raw.get("account_id")) for r in q] == [("accounts", "A2")]
    assert q[0].reason.startswith("the database refused the row: ") and "hold_a2: refused by policy" in q[0].reason
    assert alerted == {"A1", "A2", "A3"}  # A2's events were kept; only its contact row was refused
    assert scan_until_caught_up(app)["rows"] == 0
    app.close()


def test_refused_event_rows_are_bisected_out_and_the_batch_commits(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False))
    _refuse(app, "vigil_findings", "NEW.account_id = 'A3'", "no_a3_findings")
    totals = scan_until_caught_up(app)
    assert totals["caught_up"] and totals["rows"] == 42
    with app.sessions() as s:
        q = s.scalars(select(QuarantineRow)).all()
        findings = {f.account_id for f in s.scalars(select(FindingRow))}
        alerted = {a.account_id for a in s.scalars(select(AlertRow))}
    # exactly the rows that make A3's findings: the large withdrawal and the margin call fail on their
    # own; the login from a new country fails only after A3's home logins, so the latest row is left out
    assert sorted(r.raw.get("event_id") for r in q) == ["A3-l9", "A3-p2", "A3-t9"]
    assert all("no_a3_findings: refused by policy" in r.reason for r in q)
    assert findings == {"A1", "A2"} and alerted == {"A1", "A2"}
    assert totals["quarantined"] == len(q)
    assert scan_until_caught_up(app)["rows"] == 0  # the cursors moved past the refused rows
    app.close()


def test_a_refusal_that_is_not_about_the_data_is_raised_not_bisected(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False))
    _refuse(app, "vigil_runs", "NEW.job = 'scan'", "no_scans")
    with pytest.raises(DBAPIError, match="no_scans: refused by policy"):
        scan_until_caught_up(app)
    with app.sessions() as s:
        assert s.scalars(select(QuarantineRow)).all() == []
    app.close()
