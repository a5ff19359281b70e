"""Every benchmark under ``bench/`` runs, at a toy size, so that the scripts and the commands the docs
show for them cannot rot (issue 16 point 8).  Nothing here is timed: the figures are the scripts'
business, by hand, on a quiet machine (docs/benchmarks.md); a smoke run only proves the script still
runs end to end against the current code and prints its report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], tmp: Path, timeout: float = 600) -> str:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(args)} exited {r.returncode}:\n{out[-4000:]}"
    assert "Traceback" not in out, out[-4000:]
    return out


@pytest.mark.parametrize(("args", "expect"), [
    (["bench/ingest_bench.py", "3000"], "rows/s"),
    (["bench/scan_bench.py", "--logins", "3000", "--transactions", "3000"], "DuckDB"),
    (["bench/detectors_bench.py", "--rows", "5000", "--families", "login,leverage"], "login"),
    (["bench/backtest_bench.py", "--events", "6000", "--repeat", "1"], "duckdb"),
], ids=["ingest", "scan", "detectors", "backtest"])
def test_a_benchmark_runs_at_a_toy_size(tmp_path: Path, args: list[str], expect: str) -> None:
    out = _run(args, tmp_path)
    assert expect.lower() in out.lower(), out[-3000:]


def test_the_startup_benchmark_and_the_detector_micro_bench_run(tmp_path: Path) -> None:
    startup = _run(["bench/backtest_bench.py", "--startup", "1"], tmp_path)
    assert re.search(r"vigil --help\s+wall [0-9.]+ s", startup) and re.search(r"50 rows a table\s+wall [0-9.]+ s",
                                                                            startup), startup[-2000:]
    from vigil_lab.synth import big, write_dir

    data = tmp_path / "data"
    write_dir(big(n_logins=2000, n_transactions=2000, n_positions=500, seed=3), data, "parquet")
    out = _run(["bench/detector_micro.py", str(data), "--detectors", "new_location,large_withdrawal",
                "--chunks", "2"], tmp_path)
    assert "new_location" in out and "large_withdrawal" in out


def test_the_scaling_benchmark_runs_both_engines(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    out = _run(["bench/backtest_scaling.py", "--events", "5000"], tmp_path)
    assert '"same_alert_ids": true' in out, out[-3000:]


@pytest.mark.postgres
def test_the_postgres_benchmarks_run(tmp_path: Path, pg_url: str) -> None:
    server = pg_url.replace("postgresql+psycopg://", "postgresql://")
    out = _run(["bench/tick_bench.py", "--pg", server, "--accounts", "2000", "--events", "300", "--cycles", "2"],
               tmp_path)
    assert "p50" in out
    out = _run(["bench/delivery_bench.py", "--pg-url", pg_url, "--alerts", "10", "--workers", "1",
                "--skip-latency", "--skip-backlog"], tmp_path)
    assert "msg/s" in out or "messages" in out, out[-3000:]
