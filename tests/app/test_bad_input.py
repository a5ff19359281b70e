"""Bad input on real databases: each case keeps every good row and quarantines the bad one with its reason.

The clean data set (``small_dir``: 3 accounts, 18 logins, 18 transactions, 6 positions) gives a
known set of alerts; each case below breaks one thing and checks the count of good rows kept,
the quarantine and, where the bad row is the only change, that the alerts are exactly the clean
ones.  Both databases run every case (``db_url``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from alerts.store.models import SOURCE_MODELS, AlertRow, QuarantineRow
from tests.app.helpers import make_app, small_dir
from vigil.cli import main
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir

CLEAN = {"accounts": 3, "logins": 18, "transactions": 18, "positions": 6}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _alerts(app) -> set[tuple[str, str, tuple[str, ...]]]:  # type: ignore[no-untyped-def]
    with app.sessions() as s:
        return {(a.rule_id, a.account_id, tuple(a.event_ids)) for a in s.scalars(select(AlertRow))}


def _quarantine(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with app.sessions() as s:
        return [(q.row_ref, q.reason) for q in s.scalars(select(QuarantineRow).order_by(QuarantineRow.id))]


def _stored(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.engine.connect() as c:
        return {t: c.scalar(select(func.count()).select_from(SOURCE_MODELS[t].__table__)) or 0  # type: ignore[attr-defined]
                for t in CLEAN}


@pytest.fixture(scope="module")
def clean_alerts(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str, tuple[str, ...]]]:
    tmp = tmp_path_factory.mktemp("clean")
    app = make_app(f"sqlite:///{tmp / 'clean.db'}")
    import_dir(app.engine, small_dir(tmp / "data", bad_row=False))
    scan_until_caught_up(app)
    alerts = _alerts(app)
    app.close()
    assert len(alerts) > 6
    return alerts


def test_a_200_character_account_id_in_the_source_table_is_quarantined_and_the_rest_scanned(
        db_url: str, tmp_path: Path, clean_alerts: set[tuple[str, str, tuple[str, ...]]]) -> None:
    """Issue 14.1: on PostgreSQL this row used to fail every scan with StringDataRightTruncation."""
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False))
    with app.engine.begin() as c:  # written by the exchange straight into the source table
        c.execute(insert(SOURCE_MODELS["logins"].__table__), {  # type: ignore[attr-defined]
            "event_id": "long-1", "account_id": "X" * 200, "ts": "2026-03-02T08:00:00Z", "success": "true"})
        c.execute(insert(SOURCE_MODELS["accounts"].__table__), {  # type: ignore[attr-defined]
            "account_id": "A2", "locale": "x" * 28})
    totals = scan_until_caught_up(app)
    assert totals["caught_up"] and totals["rows"] == 18 + 18 + 6 + 1
    assert _alerts(app) == clean_alerts
    q = _quarantine(app)
    assert ("logins#19", "'account_id' is too long: 200 characters (Vigil stores at most 128)") in q
    assert any(reason == "'locale' is too long: 28 characters (Vigil stores at most 16)" for _r, reason in q)
    app.close()


def test_import_quarantines_a_one_megabyte_account_id_without_a_traceback(db_url: str, tmp_path: Path,
                                                                          clean_alerts: set) -> None:  # type: ignore[type-arg]
    data = small_dir(tmp_path / "data", bad_row=False)
    rows = _rows(data / "logins.csv")
    rows.insert(4, {**rows[0], "event_id": "huge-1", "account_id": "M" * 1_000_000})
    _write(data / "logins.csv", rows)
    accts = _rows(data / "accounts.csv")
    _write(data / "accounts.csv", [*accts, {**accts[0], "account_id": "N" * 1_000_000}])
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"database_url: {db_url}\n")
    r = CliRunner().invoke(main, ["--config", str(cfg), "import", str(data)])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output and "logins: 18 row(s), 1 quarantined" in r.output
    assert "quarantined logins.csv:line 6: 'account_id' is too long: 1000000 characters" in r.output
    app = make_app(db_url)
    assert _stored(app) == CLEAN
    scan_until_caught_up(app)
    assert _alerts(app) == clean_alerts
    assert sorted(ref for ref, _ in _quarantine(app)) == ["accounts.csv:line 5", "logins.csv:line 6"]
    app.close()


def test_one_malformed_csv_and_one_latin1_file_keep_every_other_table(db_url: str, tmp_path: Path) -> None:
    data = small_dir(tmp_path / "data", bad_row=False)
    text = (data / "transactions.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    text.insert(3, 'bad-q,A1,"2026-03-01T09:00:00Z,withdrawal,USDT,5\n')  # a quote that never closes
    text.insert(8, "bad-x,A1,2026-03-01T09:00:00Z,withdrawal,USDT,5,,,,,extra\n")  # one field too many
    (data / "transactions.csv").write_text("".join(text), encoding="utf-8")
    accounts = (data / "accounts.csv").read_text(encoding="utf-8").replace("A1,ko", "A1,pt-BR São Paulo")
    (data / "accounts.csv").write_bytes(accounts.encode("latin-1"))
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"database_url: {db_url}\n")
    r = CliRunner().invoke(main, ["--config", str(cfg), "import", str(data)])
    assert r.exit_code == 4, r.output  # a file was refused; everything else is imported
    assert "refused: accounts.csv: line 2: not UTF-8 text" in r.output
    assert "transactions: 18 row(s), 2 quarantined" in r.output
    app = make_app(db_url)
    assert _stored(app) == {**CLEAN, "accounts": 0}
    reasons = dict(_quarantine(app))
    assert reasons["transactions.csv:line 4"].startswith("line 4: cannot split the line into fields")
    assert reasons["transactions.csv:line 9"] == "line 9: 11 fields where the header has 7"
    totals = scan_until_caught_up(app)
    assert totals["rows"] == 18 + 18 + 6 and totals["quarantined"] == 0
    app.close()


def test_epoch_seconds_are_read_as_seconds_not_1970(db_url: str, tmp_path: Path,
                                                    clean_alerts: set) -> None:  # type: ignore[type-arg]
    import pandas as pd

    data = small_dir(tmp_path / "data", bad_row=False)
    rows = _rows(data / "logins.csv")
    for r in rows:
        r["ts"] = str(int(pd.Timestamp(r["ts"]).timestamp()))
    _write(data / "logins.csv", rows)
    app = make_app(db_url)
    rep = import_dir(app.engine, data)
    assert not rep.quarantined["logins"]
    scan_until_caught_up(app)
    assert _alerts(app) == clean_alerts
    with app.sessions() as s:
        years = {a.ts.year for a in s.scalars(select(AlertRow))}
    assert years == {2026}
    app.close()
