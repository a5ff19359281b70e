"""Scan throughput and peak memory: Vigil against a straightforward DuckDB SQL version of the same
three checks (new-country login, large withdrawal, high leverage / margin tiers), same data, same
script.  Each variant runs in its own child process so its peak RSS is its own.

    python bench/scan_bench.py                       # 1M logins + 1M transactions (+200k positions)
    python bench/scan_bench.py --logins 200000 --transactions 200000   # quicker

Variants:
  vigil-detectors  the three detectors on one in-memory batch (pure, vectorised core)
  vigil-scan       the full scan cycle the daemon runs, with a rule pack of just these three checks:
                   read parquet, validate and quarantine, detectors with profiles, rules, alert stage,
                   findings, alerts and profiles written to SQLite in one transaction
  duckdb-sql       the same three checks as SQL window queries over the same parquet files
Prints events per second, peak RSS, findings, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the same three checks as SQL: bench/detectors_bench.py holds them, verified there to return
# exactly the detectors' findings (new country; large withdrawal; margin-ratio tiers)
from bench.detectors_bench import SQL as _FAMILY_SQL

DUCKDB_SQL = {"new_country": _FAMILY_SQL["login"], "large_withdrawal": _FAMILY_SQL["transfer"],
              "margin_tiers": _FAMILY_SQL["leverage"]}

# a rule pack with only those three checks, parameters as in the SQL
BENCH_PACK = """
version: 1
detectors:
  new_location: {levels: [country]}
  high_leverage: {rise_factor: 1000000000, max_leverage: 1000000000}
rules:
  - id: bench-new-country
    detector: new_location
    severity: high
    notify: {channels: [email], template: new_location}
  - id: bench-large-withdrawal
    detector: large_withdrawal
    severity: high
    notify: {channels: [email], template: large_withdrawal}
  - id: bench-margin-tiers
    detector: high_leverage
    severity: medium
    notify: {channels: [email], template: liquidation_risk}
"""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_rules(tmp: str) -> Any:
    from rules import load_rules

    p = Path(tmp) / "rules"
    p.mkdir(exist_ok=True)
    (p / "bench.yaml").write_text(BENCH_PACK)
    return load_rules(p)


def run_detectors(data: str, q: Any) -> None:
    from datetime import UTC, datetime

    import pandas as pd

    from detectors import Batch
    frames = {n: pd.read_parquet(Path(data) / f"{n}.parquet") for n in ("logins", "transactions", "positions")}
    rules = _bench_rules(tempfile.mkdtemp())
    base = _peak_mb()
    t0 = time.perf_counter()
    batch = Batch.from_frames(frames)
    found = {}
    for name in ("new_location", "large_withdrawal", "high_leverage"):
        res = rules.detectors[name].scan(batch, {}, now=datetime.now(UTC))
        found[name] = len(res.findings)
    q.put({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "base_mb": base, "findings": found})


def run_scan(data: str, q: Any) -> None:
    from vigil.backtest import run_backtest

    rules = _bench_rules(tempfile.mkdtemp())
    base = _peak_mb()
    t0 = time.perf_counter()
    res = run_backtest(data, rules=rules, batch_rows=2_000_000, geo=None)
    q.put({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "base_mb": base,
           "findings": res.findings, "alerts": len(res.alerts)})


def run_duckdb(data: str, q: Any) -> None:
    import duckdb

    con = duckdb.connect()
    base = _peak_mb()
    t0 = time.perf_counter()
    for n in ("logins", "transactions", "positions"):
        con.execute(f"CREATE TABLE {n} AS SELECT * REPLACE (CAST(ts AS TIMESTAMPTZ) AS ts) "
                    f"FROM read_parquet('{Path(data) / (n + '.parquet')}')")
    found = {k: len(con.execute(sql).fetchall()) for k, sql in DUCKDB_SQL.items()}
    q.put({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "base_mb": base, "findings": found})


def _guard(fn: Any, data: str, q: Any) -> None:
    try:
        fn(data, q)
    except BaseException as e:
        q.put({"error": f"{type(e).__name__}: {e}"})
        raise


def child(fn: Any, data: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_guard, args=(fn, data, q))
    p.start()
    out = q.get()
    p.join()
    if "error" in out:
        raise SystemExit(f"{fn.__name__} failed: {out['error']}")
    return out  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logins", type=int, default=1_000_000)
    ap.add_argument("--transactions", type=int, default=1_000_000)
    ap.add_argument("--skip-scan", action="store_true", help="skip the full scan cycle (slowest)")
    args = ap.parse_args()
    from vigil_lab import synth

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        t0 = time.perf_counter()
        frames = synth.big(args.logins, args.transactions, seed=7)
        synth.write_dir(frames, tmp, fmt="parquet")
        events = sum(len(frames[n]) for n in ("logins", "transactions", "positions"))
        print(f"data: {', '.join(f'{n} {len(frames[n]):,}' for n in ('logins', 'transactions', 'positions'))} "
              f"({events:,} events) generated in {time.perf_counter() - t0:.1f}s")
        del frames
        results = {"duckdb-sql": child(run_duckdb, tmp), "vigil-detectors": child(run_detectors, tmp)}
        if not args.skip_scan:
            results["vigil-scan"] = child(run_scan, tmp)
    duck = results["duckdb-sql"]
    print(f"\n{'variant':<17}{'seconds':>9}{'events/s':>12}{'peak RSS MB':>13}  vs DuckDB (speed, memory)")
    for name, r in results.items():
        eps = events / r["seconds"]
        print(f"{name:<17}{r['seconds']:>9.2f}{eps:>12,.0f}{r['peak_mb']:>13.0f}  "
              f"{eps / (events / duck['seconds']):.2f}x, {r['peak_mb'] / duck['peak_mb']:.2f}x")
    print("\nfindings:", json.dumps({k: v["findings"] for k, v in results.items()}))


if __name__ == "__main__":
    main()
