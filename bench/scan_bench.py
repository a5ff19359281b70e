"""Scan throughput and peak memory: Vigil against a straightforward DuckDB SQL version of the same
three checks (new-country login, large withdrawal, high leverage / margin tiers), same data, same
script.  Each variant runs in its own child process so its peak RSS is its own.

    python bench/scan_bench.py                       # 1M logins + 1M transactions (+200k positions)
    python bench/scan_bench.py --logins 200000 --transactions 200000   # quicker

Variants:
  vigil-detectors  the three detectors on one in-memory batch (pure, vectorised core)
  vigil-scan       the full scan cycle the daemon runs: read parquet, validate and quarantine,
                   detectors, rules, alert stage and findings written to SQLite in one transaction
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

DUCKDB_SQL = {
    "new_country": """
        WITH ok AS (
          SELECT account_id, event_id, ts, country FROM logins WHERE success AND country IS NOT NULL),
        seq AS (
          SELECT *, row_number() OVER (PARTITION BY account_id ORDER BY ts, event_id) - 1 AS prior_n,
                 lag(ts) OVER (PARTITION BY account_id, country ORDER BY ts, event_id) AS prev_same
          FROM ok)
        SELECT count(*) FROM seq
        WHERE prior_n >= 3 AND (prev_same IS NULL OR ts - prev_same > INTERVAL 90 DAY)""",
    "large_withdrawal": """
        WITH w AS (
          SELECT account_id, event_id, ts, coalesce(amount_usd, amount) AS usd FROM transactions
          WHERE kind = 'withdrawal'),
        h AS (
          SELECT *, avg(usd) OVER win AS mean60, count(usd) OVER win AS n60 FROM w
          WINDOW win AS (PARTITION BY account_id ORDER BY ts
                         RANGE BETWEEN INTERVAL 60 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING))
        SELECT count(*) FROM h
        WHERE usd >= 10000 OR (n60 >= 3 AND usd >= 1000 AND usd >= 5 * mean60)""",
    "high_leverage": """
        WITH p AS (
          SELECT account_id, symbol, event_id, ts,
                 CASE WHEN margin_ratio >= 0.9 THEN 3 WHEN margin_ratio >= 0.8 THEN 2
                      WHEN margin_ratio >= 0.7 THEN 1 ELSE 0 END AS tier,
                 CASE WHEN leverage >= 50 THEN 1 ELSE 0 END AS high FROM positions),
        l AS (
          SELECT *, lag(tier, 1, 0) OVER w AS prev_tier, lag(high, 1, 0) OVER w AS prev_high FROM p
          WINDOW w AS (PARTITION BY account_id, symbol ORDER BY ts, event_id))
        SELECT count(*) FROM l WHERE tier > prev_tier OR (high = 1 AND prev_high = 0)""",
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_detectors(data: str, q: Any) -> None:
    from datetime import UTC, datetime

    import pandas as pd

    from detectors import Batch
    from rules import load_rules

    frames = {n: pd.read_parquet(Path(data) / f"{n}.parquet") for n in ("logins", "transactions", "positions")}
    rules = load_rules()
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

    base = _peak_mb()
    t0 = time.perf_counter()
    res = run_backtest(data, batch_rows=2_000_000)
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
    found = {k: con.execute(sql).fetchone()[0] for k, sql in DUCKDB_SQL.items()}  # type: ignore[index]
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
    from vigil import synth

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
