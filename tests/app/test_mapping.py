"""A new user's export with its own column names: every missing column named, the snippet pasted, accepted."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from alerts.store.models import SOURCE_MODELS
from vigil.cli import main
from vigil.mapping import suggest_file


def _export(path: Path) -> Path:
    path.mkdir()
    with (path / "logins.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "login_time", "ip_address"])
        for i in range(6):
            w.writerow([f"U{i % 2}", f"2026-03-0{i + 1}T08:00:00Z", f"175.45.{i}.1"])
    return path


def _snippet(output: str) -> str:
    lines = output.splitlines()
    start = lines.index("source:")
    block = [lines[start]]
    for ln in lines[start + 1:]:
        if not ln.startswith(" "):
            break
        block.append(ln)
    return "\n".join(block) + "\n"


def test_missing_columns_are_all_named_with_guesses_and_the_snippet_is_accepted(tmp_path: Path) -> None:
    data = _export(tmp_path / "export")
    runner = CliRunner()
    r = runner.invoke(main, ["backtest", "--data", str(data), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 4, r.output
    out = r.output
    assert "logins.csv: required column(s) missing: event_id, account_id, ts, success" in out
    assert "account_id: did you mean 'user_id'?" in out and "ts: did you mean 'login_time'?" in out
    assert "The columns of logins.csv: user_id, login_time, ip_address" in out
    assert "Traceback" not in out
    snippet = _snippet(out)
    assert "account_id: user_id" in snippet and "ip: ip_address" in snippet and 'event_id: "@hash"' in snippet

    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(snippet, encoding="utf-8")
    r = runner.invoke(main, ["--config", str(cfg), "backtest", "--data", str(data), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    assert "rows read: 6 (logins 6)" in r.output and "quarantined rows: 0" in r.output

    db = tmp_path / "engine.db"
    cfg.write_text(snippet + f"database_url: sqlite:///{db}\n", encoding="utf-8")
    r = runner.invoke(main, ["--config", str(cfg), "import", str(data)])
    assert r.exit_code == 0, r.output
    assert "logins: 6 row(s)" in r.output
    eng = create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        t = SOURCE_MODELS["logins"].__table__  # type: ignore[attr-defined]
        assert c.scalar(select(func.count()).select_from(t)) == 6
        assert c.scalar(select(func.count(func.distinct(t.c.event_id)))) == 6  # @hash: one id per row
        assert set(c.scalars(select(t.c.success))) == {"true"}
    eng.dispose()


def test_a_wrong_mapping_names_the_key_with_a_suggestion(tmp_path: Path) -> None:
    data = _export(tmp_path / "export")
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("source:\n  tables:\n    logins:\n      columns: {acount_id: user_id, ts: logintime}\n")
    r = CliRunner().invoke(main, ["--config", str(cfg), "backtest", "--data", str(data),
                                  "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 4, r.output
    assert "source.tables.logins.columns.acount_id: not a column of the contract table 'logins'; " \
           "did you mean 'account_id'?" in r.output
    assert "source.tables.logins.columns.ts: column 'logintime' is not in logins.csv; did you mean 'login_time'?" \
        in r.output


def test_every_row_quarantined_exits_non_zero_after_using_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "logins.csv").write_text("event_id,account_id,ts,success\ne1,A1,03/04/2026,true\ne2,A1,04.03.2026,true\n")
    (data / "transactions.csv").write_text("event_id,account_id,ts,kind,asset,amount\n"
                                           "t1,A1,2026-03-01T08:00:00Z,deposit,USDT,5\n")
    r = CliRunner().invoke(main, ["backtest", "--data", str(data), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 4, r.output
    assert "every row of logins was quarantined" in r.output
    assert "rows read: 3 (logins 2, transactions 1)" in r.output and (tmp_path / "a.csv").exists()


def test_file_name_suggestions() -> None:
    assert (suggest_file("withdrawals") or "").startswith("did you mean transactions.csv with kind=withdrawal?")
    assert (suggest_file("login_history") or "").startswith("did you mean logins.csv?")
    assert (suggest_file("transaction") or "").startswith("did you mean transactions.csv?")
    assert suggest_file("labels") is None


def test_the_documented_snippet_is_what_vigil_prints_and_is_accepted(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "input-contract.md").read_text(encoding="utf-8")
    csv_text = doc.split("cat > export/logins.csv <<'CSV'\n", 1)[1].split("\nCSV\n", 1)[0] + "\n"
    yaml_text = doc.split("cat > vigil.yaml <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0] + "\n"
    data = tmp_path / "export"
    data.mkdir()
    (data / "logins.csv").write_text(csv_text, encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(main, ["backtest", "--data", str(data), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 4 and _snippet(r.output) == yaml_text, r.output
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(yaml_text, encoding="utf-8")
    r = runner.invoke(main, ["--config", str(cfg), "backtest", "--data", str(data), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    assert "rows read: 3 (logins 3)" in r.output and "quarantined rows: 0" in r.output


def test_import_stores_a_declared_unit_as_iso_so_the_engine_source_reads_it(tmp_path: Path) -> None:
    from alerts.store.db import make_engine, upgrade
    from vigil.importer import import_dir
    from vigil.settings import TableMap

    data = tmp_path / "d"
    data.mkdir()
    (data / "logins.csv").write_text("event_id,account_id,ts,success\ne1,A1,1772352000000000,true\n"
                                     "e2,A1,1772352000,true\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    upgrade(url)
    eng = make_engine(url)
    rep = import_dir(eng, data, {"logins": TableMap(ts_unit="us")})
    assert rep.rows == {"logins": 1} and "read as epoch us" in rep.quarantined["logins"][0].reason
    t = SOURCE_MODELS["logins"].__table__  # type: ignore[attr-defined]
    with eng.connect() as c:
        assert c.scalar(select(t.c.ts)) == "2026-03-01T08:00:00.000000+00:00"
    eng.dispose()
