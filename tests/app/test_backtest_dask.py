"""``vigil backtest --engine dask`` writes exactly what ``--engine local`` writes on the same data.

Real Dask: one local cluster of two worker processes for the module (the engine joins it with
``--scheduler``), and one CLI run that starts its own (``--workers 1``).  The data sets carry every
detector's incident, credential stuffing (a cross-account detector) among them, in small chunks so
that accounts' histories, the stuffing wave and throttle windows straddle chunk boundaries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import in_ci
from tests.detectors.conformance_data import START, make_data
from vigil.backtest import run_backtest, write_alerts
from vigil.chunks import TimeChunks

if os.environ.get("VIGIL_REQUIRE_DASK") == "1" or in_ci():
    import distributed  # noqa: F401  (scripts/test and CI install the dask extra: never a skip there)
else:
    pytest.importorskip("distributed", reason="the dask extra is not installed")

from vigil.backtest_dask import bounds_of, run_backtest_dask

NOW = datetime(2024, 4, 1, tzinfo=UTC)


def _relax_budget() -> None:
    """A condition over its time budget is switched off for the rest of a batch (rules.limits): on a
    starved machine that makes *either* engine's output depend on the load; off for the comparison."""
    import rules.engine

    rules.engine.EVAL_BUDGET_SECONDS = 60.0  # type: ignore[misc]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import Client, LocalCluster

    import rules.engine

    before = rules.engine.EVAL_BUDGET_SECONDS
    _relax_budget()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        client.run(_relax_budget)
        yield cluster.scheduler_address
    rules.engine.EVAL_BUDGET_SECONDS = before  # type: ignore[misc]


def _data(n_sets: int = 2) -> dict[str, pd.DataFrame]:
    """Conformance data (one incident per detector, a stuffing wave over 12 accounts) twice over."""
    parts = [make_data(11 + k, prefix=f"s{k}-") for k in range(n_sets)]
    return {t: pd.concat([p[t] for p in parts], ignore_index=True) for t in parts[0]}


def _write(frames: dict[str, pd.DataFrame], d: Path, fmt: str, row_group: int = 300) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        if fmt == "parquet":  # small row groups: several read tasks per table
            df.to_parquet(d / f"{name}.parquet", index=False, row_group_size=row_group)
        else:
            df.to_csv(d / f"{name}.csv", index=False)
    return d


def _both(d: Path, scheduler: str, chunk: int, **kw: Any) -> tuple[Any, Any]:
    local = run_backtest(d, batch_rows=chunk, now=NOW, geo=None, **kw)
    dask = run_backtest_dask(d, batch_rows=chunk, now=NOW, geo=None, scheduler=scheduler, **kw)
    return local, dask


def _same(local: Any, dask: Any, tmp_path: Path) -> None:
    assert dask.alerts == local.alerts  # same ids, same rows, same order
    assert dask.summary() == local.summary()  # counts, quarantine, skips
    assert dask.chunks == local.chunks
    for ext in ("csv", "jsonl"):
        write_alerts(local.alerts, tmp_path / f"local.{ext}")
        write_alerts(dask.alerts, tmp_path / f"dask.{ext}")
        assert (tmp_path / f"local.{ext}").read_bytes() == (tmp_path / f"dask.{ext}").read_bytes()


def test_every_detector_across_chunk_bounds_parquet(tmp_path: Path, scheduler: str) -> None:
    d = _write(_data(), tmp_path / "data", "parquet")
    # a chunk size whose bounds cut the stuffing wave (12 failures, then the success)
    logins = pd.read_parquet(d / "logins.parquet")
    wave = logins[logins["ip"] == "45.155.205.10"]["ts"]
    lo, hi = (int(pd.Timestamp(x).value) for x in (wave.min(), wave.max()))
    chunk = next((c for c in range(200, 400, 3) if any(lo < b <= hi for b in TimeChunks(d, c).bounds)), None)
    assert chunk is not None, "no chunk size cuts the stuffing wave"
    local, dask = _both(d, scheduler, chunk)
    assert local.chunks > 5  # many chunk boundaries
    fired = {a["detector"] for a in local.alerts}
    assert {"credential_stuffing", "new_location", "large_withdrawal", "high_leverage", "failed_logins",
            "trading_spike"} <= fired, fired
    _same(local, dask, tmp_path)


def test_csv_with_bad_rows_and_accounts(tmp_path: Path, scheduler: str) -> None:
    frames = _data(1)
    logins = frames["logins"].astype({"ts": object, "success": object}).copy()
    logins.loc[3, "ts"] = "not a time"  # unreadable time: the first chunk, quarantined
    logins.loc[10, "success"] = "maybe"
    logins.loc[11, "account_id"] = ""
    frames["logins"] = logins
    acc = frames["accounts"]
    frames["accounts"] = pd.concat([acc, acc.iloc[[2]].assign(tier="vip"), acc.iloc[[4]].assign(locale="xx-!!")],
                                   ignore_index=True)  # a later row wins; a bad locale is quarantined
    d = _write(frames, tmp_path / "data", "csv")
    local, dask = _both(d, scheduler, 300)
    assert local.quarantined and local.alerts
    _same(local, dask, tmp_path)


def test_stuffing_wave_over_many_accounts_and_ips(tmp_path: Path, scheduler: str) -> None:
    """Several waves from several IPs, their victims spread over every partition."""
    frames = _data(3)
    rng = np.random.default_rng(5)
    accts = frames["accounts"]["account_id"].tolist()
    rows = []
    for w in range(4):
        ip = f"45.155.{w}.10"
        t0 = START + timedelta(days=6 + 3 * w, minutes=7)
        victims = rng.choice(accts, 14, replace=False)
        for k, a in enumerate(victims):
            rows.append({"event_id": f"stuff{w}-{k}", "account_id": a, "ts": t0 + timedelta(minutes=3 * k),
                         "success": k >= 11, "ip": ip, "country": "NL", "city": "Amsterdam", "lat": 52.37,
                         "lon": 4.9, "asn": 14061, "device_id": "bot", "user_agent": "bot/1", "channel": "web",
                         "is_anonymous_ip": False})
    logins = pd.concat([frames["logins"], pd.DataFrame(rows)], ignore_index=True)
    frames["logins"] = logins.sort_values("ts", kind="stable").reset_index(drop=True)
    d = _write(frames, tmp_path / "data", "parquet", row_group=1_000)
    local, dask = _both(d, scheduler, 400)
    assert sum(a["detector"] == "credential_stuffing" for a in local.alerts) >= 5
    _same(local, dask, tmp_path)


def test_bounds_as_time_chunks(tmp_path: Path) -> None:
    d = _write(_data(1), tmp_path / "data", "parquet")
    for chunk in (500, 3_000, 1_000_000):
        tc = TimeChunks(d, chunk)
        parts = [b for t in tc.tables.values() for b in t.buckets]
        both = np.concatenate(parts, axis=1)
        assert bounds_of(both[0], both[1], chunk).tolist() == tc.bounds


def test_cli_engine_dask(tmp_path: Path, scheduler: str) -> None:
    from vigil.cli import main

    d = _write(_data(1), tmp_path / "data", "parquet")
    runner = CliRunner()
    local = runner.invoke(main, ["backtest", "--data", str(d), "--out", str(tmp_path / "local.csv"),
                                 "--chunk-events", "1000"])
    assert local.exit_code == 0, local.output
    for extra in (["--scheduler", scheduler], ["--workers", "1"]):
        out = tmp_path / f"dask{len(extra[1])}.csv"
        res = runner.invoke(main, ["backtest", "--data", str(d), "--out", str(out), "--chunk-events", "1000",
                                   "--engine", "dask", *extra])
        assert res.exit_code == 0, res.output
        assert _ids(out) == _ids(tmp_path / "local.csv") and _ids(out)


def test_local_cluster_keeps_its_logs_off_the_terminal(tmp_path: Path) -> None:
    """The scheduler and nannies of ``--workers`` log at INFO in the CLI's process (and a worker's
    connection closing at shutdown comes with a traceback): the user sees the summary only."""
    import subprocess
    import sys

    d = _write(_data(1), tmp_path / "data", "parquet")
    res = subprocess.run([sys.executable, "-m", "vigil", "backtest", "--data", str(d), "--out",
                          str(tmp_path / "a.csv"), "--engine", "dask", "--workers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    both = res.stdout + res.stderr
    assert "rows read" in both
    assert "distributed." not in both and "Traceback" not in both, both[-3000:]


def _ids(p: Path) -> list[str]:
    return pd.read_csv(p)["alert_id"].tolist()


def test_cli_refuses_dask_options_without_the_engine(tmp_path: Path) -> None:
    from vigil.cli import main

    d = _write(_data(1), tmp_path / "data", "parquet")
    res = CliRunner().invoke(main, ["backtest", "--data", str(d), "--out", str(tmp_path / "a.csv"), "--workers", "2"])
    assert res.exit_code == 2 and "--engine dask" in res.output
    res = CliRunner().invoke(main, ["backtest", "--data", str(d), "--out", str(tmp_path / "a.csv"), "--engine",
                                    "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert res.exit_code == 2 and "only one" in res.output


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_duplicate_event_ids_across_accounts(tmp_path: Path, scheduler: str, fmt: str) -> None:
    """Ingest quarantines a repeated event id within a chunk, whichever account the copies name:
    the copies sit in different account partitions, and the same copies must be quarantined."""
    frames = _data(2)
    logins = frames["logins"]
    accts = frames["accounts"]["account_id"].tolist()
    picks = logins.index[logins["success"].astype(bool)][40:400:60].tolist()
    rows = []
    for n, i in enumerate(picks):
        copy = logins.loc[i].copy()
        copy["account_id"] = accts[(accts.index(copy["account_id"]) + 7 + n) % len(accts)]
        rows.append((i - 0.5 if n % 2 else i + 0.5, copy))  # before or after the original, in file order
    same = logins.loc[picks[0]].copy()  # the same account twice
    rows.append((picks[0] + 0.25, same))
    late = logins.loc[picks[1]].copy()  # the same id a week later: another chunk, not a duplicate
    late["ts"] = late["ts"] + timedelta(days=7)
    late["account_id"] = accts[3]
    rows.append((len(logins) + 1.0, late))
    extra = pd.DataFrame([r for _k, r in rows], index=[k for k, _r in rows])
    frames["logins"] = pd.concat([logins, extra]).sort_index().reset_index(drop=True)
    d = _write(frames, tmp_path / "data", fmt)
    local, dask = _both(d, scheduler, 300)
    dup_reasons = [q for q in local.quarantined if "duplicate event_id" in q.reason]
    assert len(dup_reasons) >= len(picks)
    _same(local, dask, tmp_path)


def test_progress_follows_the_tasks(tmp_path: Path, scheduler: str) -> None:
    import io

    d = _write(_data(1), tmp_path / "data", "parquet")
    out = io.StringIO()
    res = run_backtest_dask(d, batch_rows=500, now=NOW, geo=None, scheduler=scheduler, progress=out)
    text = out.getvalue()
    assert res.alerts and "backtest: events" in text and "[tasks " in text
    last = text.rstrip().split("\r")[-1]
    done, total = (int(x) for x in last.split("[tasks ")[1].split("]")[0].split("/"))
    assert done == total > 10 and "(100%)" in last and text.endswith("\n")


def test_mapped_export_with_epoch_microseconds(tmp_path: Path, scheduler: str) -> None:
    """The export's own names and a declared timestamp unit (``source.tables``): read by the client
    with the mapping, the unit carried to every partition's validation."""
    from vigil.settings import TableMap

    frames = _data(1)
    logins = frames["logins"].rename(columns={"account_id": "user", "ts": "when"})
    # read as milliseconds unless the unit is declared: the declaration must reach every partition
    logins["when"] = (pd.to_datetime(logins["when"], utc=True).astype("int64") // 10**3).astype("int64")
    frames["logins"] = logins
    d = _write(frames, tmp_path / "data", "parquet")
    tables = {"logins": TableMap(columns={"account_id": "user", "ts": "when"}, ts_unit="us")}
    local, dask = _both(d, scheduler, 300, tables=tables)
    assert any(a["detector"] == "credential_stuffing" for a in local.alerts) and not local.quarantined
    _same(local, dask, tmp_path)
