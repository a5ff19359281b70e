"""The command line: the backtest contract, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from tests.app.helpers import small_dir
from vigil.cli import main


def test_backtest_writes_the_contract_and_names_quarantined_rows(tmp_path: Path) -> None:
    data = small_dir(tmp_path / "data")
    runner = CliRunner()
    out_csv, out_jsonl = tmp_path / "alerts.csv", tmp_path / "alerts.jsonl"
    r = runner.invoke(main, ["backtest", "--data", str(data), "--out", str(out_csv)])
    assert r.exit_code == 0, r.output
    assert "quarantined rows: 2" in r.output
    assert ("unparseable timestamp in 'ts': yesterday-ish (expected ISO 8601 or epoch milliseconds)  "
            "[logins.csv:line 20]") in r.output
    assert "unknown kind 'withdraw'; did you mean 'withdrawal'?" in r.output
    assert "[transactions.csv:line 20]" in r.output
    rows = list(csv.DictReader(out_csv.open()))
    assert {"alert_id", "rule_id", "detector", "account_id", "severity", "ts", "event_ids"} <= set(rows[0])
    # the large withdrawal: one alert (the withdrawal rules group by family; withdrawal-large or the risk
    # score asks, the other's finding joins it)
    big = [r for r in rows if r["rule_id"] in ("withdrawal-large", "withdrawal-risk-high") and r["account_id"] == "A2"]
    assert len(big) == 1 and big[0]["event_ids"].split("|") == ["A2-t9"]

    r = runner.invoke(main, ["backtest", "--data", str(data), "--out", str(out_jsonl)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in out_jsonl.read_text().splitlines()]
    assert len(lines) == len(rows)
    assert all(isinstance(x["event_ids"], list) and x["event_ids"] for x in lines)
    assert sorted(x["alert_id"] for x in lines) == sorted(r["alert_id"] for r in rows)  # deterministic ids


def test_errors_are_one_line_with_an_exit_code_never_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["backtest", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code != 0 and "data directory not found" in r.output and "Traceback" not in r.output
    data = small_dir(tmp_path / "data")
    r = runner.invoke(main, ["backtest", "--data", str(data), "--out", str(tmp_path / "a.xlsx")])
    assert r.exit_code == 1 and "unknown output format; use .csv or .jsonl" in r.output
    bad_rules = tmp_path / "rules"
    bad_rules.mkdir()
    (bad_rules / "r.yaml").write_text("rules:\n  - id: x1\n    detector: new_locaton\n    severity: high\n")
    r = runner.invoke(main, ["backtest", "--data", str(data), "--rules", str(bad_rules),
                             "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 1, r.output
    assert "r.yaml:3:15" in r.output and "new_location" in r.output and "Traceback" not in r.output
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("databse_url: sqlite:///x.db\n")
    r = runner.invoke(main, ["--config", str(cfg), "scan", "--once"])
    assert r.exit_code == 2, r.output
    assert f"{cfg}:1:1: databse_url: unknown setting 'databse_url'. Did you mean 'database_url'?" in r.output


def test_lab_commands_say_how_to_install_the_lab_when_it_is_missing() -> None:
    """The product never imports the lab; without it, ``vigil demo``/``eval`` print one line and exit 2."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('vigil_lab', 'vigil_lab.demo_cmd', 'vigil_lab.eval_cmd'): sys.modules[m] = None\n"
            "from vigil.cli import main\n"
            "main([sys.argv[1], '--accounts', '5'])\n")
    for name in ("demo", "eval"):
        r = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [
            f"vigil: 'vigil {name}' is part of the Vigil lab, which is not installed: pip install 'vigil-alerts[lab]'"]
    help_ = subprocess.run([sys.executable, "-c", code.replace("[sys.argv[1], '--accounts', '5']", "['--help']"), "x"],
                           capture_output=True, text=True, timeout=120)
    assert "demo" in help_.stdout and "needs the Vigil lab" in help_.stdout
