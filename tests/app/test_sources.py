"""An external, read-only SQL source with its own table and column names, and both cursor kinds."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from alerts.store.db import normalise_url
from alerts.store.models import AlertRow, QuarantineRow
from tests.app.helpers import make_app
from vigil.daemon import scan_until_caught_up
from vigil.errors import ConfigError

EXCHANGE_DDL = [
    "CREATE TABLE auth_events (id INTEGER PRIMARY KEY, uid TEXT, happened TIMESTAMP, ok BOOLEAN, geo_cc TEXT)",
    "CREATE TABLE ledger (ledger_id TEXT, uid TEXT, event_time TIMESTAMP, type TEXT, coin TEXT, qty FLOAT, "
    "inserted_at TIMESTAMP)",
    "CREATE TABLE users (uid TEXT, lang TEXT, mail TEXT)",
]


def _exchange(url: str) -> None:
    eng = create_engine(normalise_url(url))
    with eng.begin() as c:
        for ddl in EXCHANGE_DDL:
            c.execute(text(ddl))
        for i in range(5):
            c.execute(text("INSERT INTO auth_events VALUES (:i, 'u1', :ts, true, 'KR')"),
                      {"i": i + 1, "ts": f"2026-03-0{i + 1} 08:00:00"})
        c.execute(text("INSERT INTO auth_events VALUES (6, 'u1', '2026-03-06 08:00:00', true, 'BR')"))
        c.execute(text("INSERT INTO auth_events VALUES (7, 'u1', '2026-03-06 09:00:00', true, NULL)"))
        for i in range(4):
            c.execute(text("INSERT INTO ledger VALUES (:id, 'u1', :ts, 'withdrawal', 'USDT', 100, :ins)"),
                      {"id": f"L{i}", "ts": f"2026-03-0{i + 1} 09:00:00", "ins": f"2026-03-0{i + 1} 09:00:01"})
        c.execute(text("INSERT INTO ledger VALUES ('L9', 'u1', '2026-03-06 10:00:00', 'withdrawal', 'USDT', "
                       "25000, '2026-03-06 10:00:01')"))
        c.execute(text("INSERT INTO ledger VALUES ('L10', 'u1', '2026-03-06 11:00:00', 'withdrawl', 'USDT', 5, "
                       "'2026-03-06 11:00:01')"))
        c.execute(text("INSERT INTO users VALUES ('u1', 'ja', 'u1@example.com')"))
    eng.dispose()


SOURCE = {
    "kind": "sql",
    "settle_seconds": 0,
    "tables": {
        "logins": {"table": "auth_events", "cursor": "id", "cursor_kind": "int",
                   "columns": {"event_id": "id", "account_id": "uid", "ts": "happened", "success": "ok",
                               "country": "geo_cc"}},
        "transactions": {"table": "ledger", "cursor": "inserted_at", "cursor_kind": "ts",
                         "columns": {"event_id": "ledger_id", "account_id": "uid", "ts": "event_time",
                                     "kind": "type", "asset": "coin", "amount": "qty"}},
        "accounts": {"table": "users", "columns": {"account_id": "uid", "locale": "lang", "email": "mail"}},
    },
}


def test_mapped_external_source(db_url: str, tmp_path: Path) -> None:
    ext = f"sqlite:///{tmp_path / 'exchange.db'}"
    _exchange(ext)
    app = make_app(db_url, source={**SOURCE, "url": ext})
    totals = scan_until_caught_up(app)
    assert totals["rows"] == 13 and totals["quarantined"] == 1
    with app.sessions() as s:
        rules = {(a.rule_id, tuple(a.event_ids)) for a in s.scalars(select(AlertRow))}
        q = s.scalars(select(QuarantineRow)).one()
    assert ("login-new-country", ("6",)) in rules
    assert ("withdrawal-large", ("L9",)) in rules
    assert q.row_ref.startswith("transactions@") and "did you mean 'withdrawal'" in q.reason
    assert scan_until_caught_up(app)["rows"] == 0  # both cursors remember where they are
    app.close()


def test_a_wrong_mapping_is_a_configuration_error_naming_the_key(tmp_path: Path) -> None:
    ext = f"sqlite:///{tmp_path / 'exchange.db'}"
    _exchange(ext)
    bad = {**SOURCE, "url": ext}
    bad["tables"] = {**SOURCE["tables"], "logins": {**SOURCE["tables"]["logins"],  # type: ignore[dict-item]
                                                    "columns": {"event_id": "id", "account_id": "uid",
                                                                "ts": "happened", "success": "ok",
                                                                "country": "country_code"}}}
    app = make_app(f"sqlite:///{tmp_path / 'vigil.db'}", source=bad)
    with pytest.raises(ConfigError, match=r"source.tables.logins.columns.country: column 'country_code' not found"):
        scan_until_caught_up(app)
    app.close()
