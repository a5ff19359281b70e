"""The backtest's per-rule rates are per day of *data*, not per day between the first and last alert."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.app.helpers import small_dir
from vigil.cli import main
from vigil.reporting import data_days, parse_times


def _report(output: str) -> dict[str, dict[str, str]]:
    lines = output[output.index("per-rule report:"):].splitlines()[1:]
    head = lines[0].split()
    rows = {}
    for line in lines[1:]:
        if line.startswith("wrote ") or not line.strip():
            break
        cells = line.split()
        if cells[0] == "(all":
            cells = ["(all rules)", *cells[2:]]
        rows[cells[0]] = dict(zip(head, cells, strict=False))
    return rows


def test_per_account_day_divides_by_the_span_of_the_data(tmp_path: Path) -> None:
    data = small_dir(tmp_path / "data", bad_row=False)  # logins over 6 days; each account alerted once, same day
    with (data / "logins.csv").open("a", newline="") as f:  # one more quiet login, 14 days after the first
        csv.writer(f).writerow(["A1-l99", "A1", "2026-03-15T08:00:00Z", "true", "KR", "Seoul", "10.0.0.9", "dev-A1"])
    assert data_days(data) == pytest.approx(14.0)
    r = CliRunner().invoke(main, ["backtest", "--data", str(data), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    rows = _report(r.stdout)
    new_country = rows["login-new-country"]
    assert (new_country["alerts"], new_country["accounts"]) == ("3", "3")
    assert float(new_country["per_account_day"]) == pytest.approx(1 / 14, abs=1e-3)  # not 1.0 (alerts' span)


def test_data_days_reads_every_event_table_and_every_timestamp_form(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    pd.DataFrame({"ts": ["2026-01-01T00:00:00Z", "not a time", "2026-01-03T12:00:00+02:00"]}).to_csv(
        d / "logins.csv", index=False)
    pd.DataFrame({"ts": [pd.Timestamp("2026-01-05T10:00:00Z").value // 1_000_000]}).to_csv(
        d / "transactions.csv", index=False)  # epoch milliseconds
    pd.DataFrame({"ts": pd.to_datetime(["2025-12-31T00:00:00Z"], utc=True)}).to_parquet(d / "positions.parquet")
    pd.DataFrame({"account_id": ["x"]}).to_csv(d / "security_events.csv", index=False)  # no ts: left out
    assert data_days(d) == pytest.approx(5 + 10 / 24)
    assert data_days(tmp_path / "empty") == 1.0
    times = parse_times(pd.Series(["2026-01-01T00:00:00Z", "1767225600000", "", None]))
    assert times.iloc[0] == times.iloc[1] and times.iloc[2:].isna().all()


def test_data_days_on_the_evaluation_data_layout(tmp_path: Path) -> None:
    """``vigil eval --out`` writes times as ``2026-01-10 17:34:25.012000+00:00``; a column of them
    once reached pandas' epoch conversion as all-NaN floats, which can raise FloatingPointError
    (seen on a 122-row table).  Only real numbers are converted now."""
    d = tmp_path / "eval-data"
    d.mkdir()
    times = pd.date_range("2026-01-10 17:34:25.012", periods=122, freq="7h", tz="UTC")
    pd.DataFrame({"event_id": range(122), "ts": [str(t) for t in times]}).to_csv(d / "security_events.csv",
                                                                                  index=False)
    assert data_days(d) == pytest.approx(121 * 7 / 24)
