"""``vigil tune``: a rule's main parameter swept on labelled data, the value within budget marked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from tests.app.helpers import T0, iso, write_csv
from vigil.cli import main


def _data(root: Path) -> tuple[Path, Path]:
    """Four accounts, one withdrawal each (500, 2,000, 5,000, 20,000 USD) over two days; the two
    largest are labelled incidents."""
    root.mkdir()
    txs = [{"event_id": f"t{i}", "account_id": f"A{i}", "ts": iso(T0 + timedelta(hours=16 * i)),
            "kind": "withdrawal", "asset": "USDT", "amount": str(usd), "address": f"0x{i:040x}"}
           for i, usd in enumerate((500, 2000, 5000, 20000))]
    write_csv(root / "transactions.csv", txs)
    write_csv(root / "accounts.csv", [{"account_id": f"A{i}"} for i in range(4)])
    labels = root.parent / "labels.csv"
    labels.write_text("event_id\nt2\nt3\n", encoding="utf-8")
    return root, labels


def test_tune_sweeps_and_marks_the_value_within_budget(tmp_path: Path) -> None:
    data, labels = _data(tmp_path / "data")
    r = CliRunner().invoke(main, ["tune", "withdrawal-large", "--data", str(data), "--labels", str(labels),
                                  "--budget", "1", "--values", "1000,4000,10000,30000"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("sweep of rule withdrawal-large: detector large_withdrawal, parameter absolute_usd "
                               "(now 10000), 2.0 day(s) of data, 2 labelled transactions event(s), budget 1")
    rows = {ln.split()[0]: ln for ln in lines[2:6]}
    # 1,000 is below cold_start_usd (3,000): the detector refuses it, and says why
    assert "refused: The 'cold_start_usd' parameter of LargeWithdrawal must not exceed 'absolute_usd'" in rows["1000"]
    assert rows["4000"].split()[1:5] == ["2", "1.00", "100.0%", "100.0%"] and "<- within budget" in rows["4000"]
    assert rows["10000"].split()[1:5] == ["1", "0.50", "100.0%", "50.0%"] and "(now)" in rows["10000"]
    assert rows["30000"].split()[1:3] == ["0", "0.00"]
    assert lines[-1] == "set detectors: large_withdrawal: absolute_usd: 4000  (recall 100.0%, 1.00 alert(s) per day)"

    r = CliRunner().invoke(main, ["tune", "withdrawal-large", "--data", str(data), "--labels", str(labels),
                                  "--budget", "0.1", "--values", "4000,10000"])
    assert r.exit_code == 0 and "no value keeps within 0.1 alert(s) per day" in r.output


def test_tune_errors_are_one_line(tmp_path: Path) -> None:
    data, labels = _data(tmp_path / "data")
    runner = CliRunner()
    r = runner.invoke(main, ["tune", "withdrawal-larg", "--data", str(data), "--labels", str(labels), "--budget", "1"])
    assert r.exit_code != 0
    assert "no rule 'withdrawal-larg' in the rule set; did you mean 'withdrawal-large'?" in r.output
    r = runner.invoke(main, ["tune", "withdrawal-large", "--data", str(data), "--labels", str(labels), "--budget", "1",
                             "--param", "absolute"])
    assert r.exit_code != 0 and "not a parameter of detector 'large_withdrawal'" in r.output
    assert "Traceback" not in r.output
