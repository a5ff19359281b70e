"""Reading a data directory: one bad file or line never costs the good ones (no database)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vigil.datafile import FileRefused, read_csv
from vigil.files import FileSource
from vigil.ingest import validate
from vigil.settings import TableMap

HEADER = "event_id,account_id,ts,success,city\n"


def _good(i: int) -> str:
    return f"e{i},A1,2026-03-0{i}T08:00:00Z,true,Seoul\n"


def _validated(path: Path) -> tuple[pd.DataFrame, list[str]]:
    df = read_csv(path)
    assert df is not None
    good, bad = validate("logins", df)
    return good, [f"{q.ref}: {q.reason}" for q in bad]


@pytest.mark.parametrize(("broken", "why"), [
    ('e9,A1,"2026-03-09T08:00:00Z,true,Seoul\n', "a quote that never closes"),
    ("e9,A1,2026-03-09T08:00:00Z,true,Seoul,extra\n", "6 fields where the header has 5"),
])
def test_an_unsplittable_line_is_quarantined_with_its_line_number(tmp_path: Path, broken: str, why: str) -> None:
    p = tmp_path / "logins.csv"
    p.write_text(HEADER + _good(1) + _good(2) + broken + _good(3) + _good(4), encoding="utf-8")
    good, bad = _validated(p)
    assert list(good["event_id"]) == ["e1", "e2", "e3", "e4"]
    assert len(bad) == 1 and bad[0].startswith("logins.csv:line 4: line 4: "), bad
    assert why in bad[0]


def test_line_numbers_stay_exact_with_blank_lines_and_quoted_newlines(tmp_path: Path) -> None:
    p = tmp_path / "logins.csv"
    p.write_text(HEADER + _good(1) + "\n" + 'e2,A1,2026-03-02T08:00:00Z,true,"New\nYork"\n'
                 + "e3,A1,03/04/2026,true,Seoul\n", encoding="utf-8")
    good, bad = _validated(p)
    assert list(good["city"]) == ["Seoul", "New\nYork"]
    assert bad == ["logins.csv:line 6: unparseable timestamp in 'ts': 03/04/2026 "
                   "(expected ISO 8601 or epoch milliseconds)"]


def test_nul_bytes_are_refused_not_truncated(tmp_path: Path) -> None:
    p = tmp_path / "logins.csv"
    p.write_bytes((HEADER + _good(1) + "e2,A1\x00evil,2026-03-02T08:00:00Z,true,Seoul\n").encode())
    good, bad = _validated(p)
    assert list(good["event_id"]) == ["e1"]
    assert bad == ["logins.csv:line 3: NUL byte in 'account_id': refused, not truncated"]


@pytest.mark.parametrize(("codec", "city"), [("latin-1", "São Paulo"), ("gbk", "上海")])
def test_a_file_that_is_not_utf8_is_refused_alone_and_can_be_declared(tmp_path: Path, codec: str, city: str) -> None:
    (tmp_path / "logins.csv").write_bytes((HEADER + f"e1,A1,2026-03-01T08:00:00Z,true,{city}\n").encode(codec))
    (tmp_path / "transactions.csv").write_text(
        "event_id,account_id,ts,kind,asset,amount\nt1,A1,2026-03-01T08:00:00Z,deposit,USDT,5\n", encoding="utf-8")
    src = FileSource(tmp_path)
    assert src.tables() == ["transactions"]  # the other table is read
    msg = src.problems["logins"]
    assert msg.startswith("logins.csv: line 2: not UTF-8 text (byte 0x") and "This file is skipped" in msg
    assert "source.tables.logins.encoding:" in msg
    src = FileSource(tmp_path, {"logins": TableMap(encoding=codec)})
    good, bad = validate("logins", src.read("logins", {}, 100, pd.Timestamp.now("UTC")).raw)
    assert not bad and list(good["city"]) == [city]


def test_empty_files_are_absent_tables_and_unknown_files_get_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "positions.csv").write_bytes(b"")
    (tmp_path / "security_events.parquet").write_bytes(b"")
    (tmp_path / "logins.csv").write_text(HEADER + _good(1), encoding="utf-8")
    (tmp_path / "withdrawals.csv").write_text("id,uid\n", encoding="utf-8")
    src = FileSource(tmp_path)
    assert src.tables() == ["logins"] and not src.problems
    notes = "\n".join(src.notes)
    assert "positions.csv: empty file, read as an absent positions table" in notes
    assert "security_events.parquet: empty file" in notes
    assert ("withdrawals.csv: not a contract table, ignored; "
            "did you mean transactions.csv with kind=withdrawal?") in notes
    assert 'kind: "=withdrawal"' in notes and "table: withdrawals" in notes


def test_a_table_present_as_csv_and_parquet_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "logins.csv").write_text(HEADER + _good(1), encoding="utf-8")
    pd.DataFrame({"event_id": ["e1"]}).to_parquet(tmp_path / "logins.parquet")
    (tmp_path / "transactions.csv").write_text(
        "event_id,account_id,ts,kind,asset,amount\nt1,A1,2026-03-01T08:00:00Z,deposit,USDT,5\n", encoding="utf-8")
    src = FileSource(tmp_path)
    assert src.tables() == ["transactions"]
    assert "logins.csv and logins.parquet" in src.problems["logins"]


def test_a_broken_parquet_file_is_refused_alone(tmp_path: Path) -> None:
    (tmp_path / "logins.parquet").write_bytes(b"PAR1 not really")
    pd.DataFrame({"account_id": ["A1"], "locale": ["ko"]}).to_parquet(tmp_path / "accounts.parquet")
    src = FileSource(tmp_path)
    assert src.tables() == [] and src.problems["logins"].startswith("logins.parquet: not a readable Parquet file")
    assert list(src.accounts(["A1"])["locale"]) == ["ko"]


def test_duplicate_header_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "logins.csv"
    p.write_text("event_id,event_id\n1,2\n", encoding="utf-8")
    with pytest.raises(FileRefused, match="column 'event_id' appears twice"):
        read_csv(p)


def test_a_file_mapped_to_a_table_with_a_constant_kind(tmp_path: Path) -> None:
    (tmp_path / "withdrawals.csv").write_text("tx_id,uid,time,coin,qty\nw1,A1,2026-03-01T08:00:00Z,USDT,25000\n",
                                              encoding="utf-8")
    (tmp_path / "transactions.csv").write_text("old\n", encoding="utf-8")
    tmap = TableMap(table="withdrawals", columns={"kind": "=withdrawal", "event_id": "tx_id", "account_id": "uid",
                                                  "ts": "time", "asset": "coin", "amount": "qty"})
    src = FileSource(tmp_path, {"transactions": tmap})
    good, bad = validate("transactions", src.read("transactions", {}, 100, pd.Timestamp.now("UTC")).raw)
    assert not bad and good[["event_id", "kind", "amount"]].to_dict("records") == [
        {"event_id": "w1", "kind": "withdrawal", "amount": 25000.0}]
    assert src.notes == ["transactions.csv: ignored, source.tables.transactions.table names another file"]
