"""Detector throughput per family against DuckDB SQL doing the same check.

For each family (login, transfer, trading, leverage) one representative detector scans a
one-million-row batch; the same check written as DuckDB SQL (window functions) runs on the same
rows.  Each (family, engine) pair runs in a fresh subprocess so its peak memory is its own:

* events per second = batch rows / wall seconds of the check (data generation and loading into
  pandas / a DuckDB table are excluded for both); also per CPU second, which a busy shared
  machine disturbs less;
* peak memory = the process's peak RSS during the check (the kernel's VmHWM, reset just before
  the check) minus its RSS just before it, for both engines (DuckDB allocates outside Python, so
  tracemalloc would not see it), plus the Python heap peak from tracemalloc for Vigil
  (``--tracemalloc``, a separate run: tracing slows it);
* agreement = how many findings both report, to show the two checks are the same check.

    python bench/detectors_bench.py                 # all families, 1,000,000 rows, DuckDB 1 thread
    python bench/detectors_bench.py --rows 200000 --families transfer,leverage --threads 2

Results are printed as a table and written to ``bench/results/detectors.json``.  Run by hand,
never as a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START = np.datetime64("2024-01-01T00:00:00", "ns")
DAY_NS = 86_400_000_000_000
COUNTRIES = np.array(["KR", "JP", "US", "GB", "DE", "BR", "TW", "CN", "SG", "FR"], dtype=object)
FAMILIES = ("login", "transfer", "trading", "leverage")


# ------------------------------------------------------------------------------------------
# data: vectorised, seeded, canonical columns
# ------------------------------------------------------------------------------------------
def _ts(rng: np.random.Generator, n: int, days: int) -> pd.Series:
    ns = START.astype(np.int64) + rng.integers(0, days * DAY_NS, n)
    return pd.Series(pd.to_datetime(np.sort(ns), utc=True))


def logins(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    accounts = max(n // 20, 1)
    acct = rng.integers(0, accounts, n)
    home = COUNTRIES[acct % len(COUNTRIES)]
    away = rng.random(n) < 0.02
    country = np.where(away, COUNTRIES[rng.integers(0, len(COUNTRIES), n)], home)
    return pd.DataFrame(
        {
            "event_id": np.char.add("L", np.arange(n).astype(str)),
            "account_id": np.char.add("a", acct.astype(str)),
            "ts": _ts(rng, n, 90),
            "success": rng.random(n) < 0.95,
            "country": country,
        }
    )


def transactions(n: int, seed: int = 2) -> pd.DataFrame:
    """Withdrawals, deposits and trades; 2 % of the rows are trading bursts (40 trades in ~30 min)."""
    rng = np.random.default_rng(seed)
    accounts = max(n // 20, 1)
    n_burst = (n // 50) // 40 * 40
    base = n - n_burst
    acct = rng.integers(0, accounts, base)
    ts = START.astype(np.int64) + rng.integers(0, 90 * DAY_NS, base)
    kind = rng.choice(np.array(["withdrawal", "deposit", "trade"], dtype=object), base, p=[0.35, 0.15, 0.5])
    bursts = n_burst // 40
    b_acct = np.repeat(rng.integers(0, accounts, bursts), 40)
    b_ts = np.repeat(START.astype(np.int64) + rng.integers(10 * DAY_NS, 90 * DAY_NS, bursts), 40) + np.tile(
        np.arange(40) * 45_000_000_000, bursts
    )
    acct = np.concatenate([acct, b_acct])
    order = np.argsort(np.concatenate([ts, b_ts]), kind="stable")
    kind = np.concatenate([kind, np.full(n_burst, "trade", dtype=object)])[order]
    acct = acct[order]
    amount = np.round(np.exp(rng.normal(5.0, 1.0, n)), 2)  # median ~150 USDT
    return pd.DataFrame(
        {
            "event_id": np.char.add("T", np.arange(n).astype(str)),
            "account_id": np.char.add("a", acct.astype(str)),
            "ts": pd.to_datetime(np.concatenate([ts, b_ts])[order], utc=True),
            "kind": kind,
            "asset": "USDT",
            "amount": amount,
            "amount_usd": amount,
            "address": np.char.add("0x", (acct * 4 + rng.integers(0, 4, n)).astype(str)),
        }
    )


def positions(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    accounts = max(n // 50, 1)
    acct = rng.integers(0, accounts, n)
    return pd.DataFrame(
        {
            "event_id": np.char.add("P", np.arange(n).astype(str)),
            "account_id": np.char.add("a", acct.astype(str)),
            "ts": _ts(rng, n, 30),
            "symbol": np.where(rng.random(n) < 0.5, "BTCUSDT", "ETHUSDT"),
            "leverage": np.round(np.exp(rng.normal(1.5, 0.9, n)), 1) + 1.0,
            "margin_ratio": np.round(rng.beta(2, 5, n), 3),
        }
    )


# ------------------------------------------------------------------------------------------
# the checks: a Vigil detector and the same rule in DuckDB SQL
# ------------------------------------------------------------------------------------------
SQL = {
    # new country vs the last 90 days or the last 20 successful logins, after 3 logins of learning
    "login": """
        WITH ok AS (
            SELECT event_id, account_id, ts, country,
                   row_number() OVER (PARTITION BY account_id ORDER BY ts, event_id) - 1 AS n
            FROM logins WHERE success AND country IS NOT NULL),
        prev AS (
            SELECT *, lag(ts) OVER w AS prev_ts, lag(n) OVER w AS prev_n
            FROM ok WINDOW w AS (PARTITION BY account_id, country ORDER BY ts, event_id))
        SELECT event_id FROM prev
        WHERE n >= 3 AND (prev_ts IS NULL OR (ts - prev_ts > INTERVAL 90 DAY AND n - prev_n > 20))""",
    # withdrawal >= 10,000 USD, or >= 5x the mean of the earlier withdrawals within 60 days
    # (after 3 of them, and >= 1,000 USD), or >= 3,000 USD while there are fewer than 3
    "transfer": """
        WITH w AS (
            SELECT event_id, amount_usd AS usd,
                   avg(amount_usd) OVER h AS mean, count(*) OVER h AS cnt
            FROM transactions WHERE kind = 'withdrawal'
            WINDOW h AS (PARTITION BY account_id ORDER BY ts
                         RANGE BETWEEN INTERVAL 60 DAY PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW))
        SELECT event_id FROM w
        WHERE usd >= 10000 OR (cnt >= 3 AND usd >= 1000 AND usd >= 5 * mean) OR (cnt < 3 AND usd >= 3000)""",
    # trades in the last hour >= max(30, 5 x the hourly rate of the 14 days before), reported at
    # the crossing trade; learning: the first trade is at least 3 days old
    "trading": """
        WITH t AS (
            SELECT event_id, account_id, ts,
                   count(*) OVER (PARTITION BY account_id ORDER BY ts
                                  RANGE BETWEEN INTERVAL 3599999999 MICROSECOND PRECEDING
                                        AND CURRENT ROW) AS c,
                   count(*) OVER (PARTITION BY account_id ORDER BY ts
                                  RANGE BETWEEN INTERVAL '14 days 1 hour' PRECEDING
                                        AND INTERVAL 3600000000 MICROSECOND PRECEDING) AS b,
                   min(ts) OVER (PARTITION BY account_id) AS first_ts
            FROM transactions WHERE kind = 'trade'),
        s AS (
            SELECT *, ts - first_ts >= INTERVAL 3 DAY
                      AND c >= greatest(30, 5.0 * b * 3600.0
                          / greatest(3600.0, least(14 * 86400.0, epoch(ts - first_ts) - 3600.0))) AS spike
            FROM t),
        e AS (SELECT *, lag(spike, 1, false) OVER (PARTITION BY account_id ORDER BY ts, event_id) AS was
              FROM s)
        SELECT event_id FROM e WHERE spike AND NOT was""",
    # margin tiers 0.7 / 0.8 / 0.9 as set/reset latches (set at the tier, reset 0.05 below it),
    # one finding when the latched tier rises
    "leverage": """
        WITH ev AS (
            SELECT event_id, account_id, symbol, ts,
                   CASE WHEN margin_ratio >= 0.7 THEN 1 WHEN margin_ratio < 0.65 THEN 0 END AS e1,
                   CASE WHEN margin_ratio >= 0.8 THEN 1 WHEN margin_ratio < 0.75 THEN 0 END AS e2,
                   CASE WHEN margin_ratio >= 0.9 THEN 1 WHEN margin_ratio < 0.85 THEN 0 END AS e3
            FROM positions),
        l AS (
            SELECT event_id, account_id, symbol, ts,
                   coalesce(last_value(e1 IGNORE NULLS) OVER w, 0)
                   + coalesce(last_value(e2 IGNORE NULLS) OVER w, 0)
                   + coalesce(last_value(e3 IGNORE NULLS) OVER w, 0) AS tier
            FROM ev WINDOW w AS (PARTITION BY account_id, symbol ORDER BY ts, event_id
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
        d AS (SELECT *, lag(tier, 1, 0) OVER (PARTITION BY account_id, symbol ORDER BY ts, event_id) AS prev
              FROM l)
        SELECT event_id FROM d WHERE tier > prev""",
}
TABLE = {"login": "logins", "transfer": "transactions", "trading": "transactions", "leverage": "positions"}
MAKE = {"logins": logins, "transactions": transactions, "positions": positions}


def vigil_detector(family: str) -> Any:
    from detectors.high_leverage import HighLeverage
    from detectors.large_withdrawal import LargeWithdrawal
    from detectors.new_location import NewLocation
    from detectors.trading_spike import TradingSpike

    return {
        "login": lambda: NewLocation(),
        "transfer": lambda: LargeWithdrawal(),
        "trading": lambda: TradingSpike(),
        "leverage": lambda: HighLeverage(rise_factor=1e9, max_leverage=1e9),  # tiers only, as the SQL
    }[family]()


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the peak covers the check alone, not the load."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_kib(reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_one(family: str, engine: str, rows: int, threads: int, trace: bool) -> dict[str, Any]:
    """One measurement in this process (called in a fresh subprocess)."""
    table = TABLE[family]
    df = MAKE[table](rows)
    out: dict[str, Any] = {"family": family, "engine": engine, "rows": rows}
    if engine == "vigil":
        from detectors import Batch

        batch = Batch.from_frames({table: df})
        det = vigil_detector(family)
        out["detector"] = det.name
        if trace:
            import tracemalloc

            tracemalloc.start()
        before, reset = _rss_kib(), _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        res = det.scan(batch, {}, now=datetime(2024, 6, 1, tzinfo=UTC))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if trace:
            out["py_heap_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            tracemalloc.stop()
        hits = sorted({e for f in res.findings for e in f.event_ids[-1:]})
        out["profiles"] = len(res.profiles)
    else:
        import duckdb

        con = duckdb.connect(config={"threads": threads})
        con.register("src", df)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM src")
        con.unregister("src")
        del df
        before, reset = _rss_kib(), _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        hits = sorted(r[0] for r in con.execute(SQL[family]).fetchall())
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["threads"] = threads
    peak = _peak_kib(reset)
    out.update(
        seconds=round(seconds, 3),
        events_per_s=round(rows / seconds),
        cpu_seconds=round(cpu, 3),
        events_per_cpu_s=round(rows / max(cpu, 1e-9)),
        findings=len(hits),
        peak_extra_mib=round(max(peak - before, 0) / 1024, 1),
        hits_sample=hits,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--threads", type=int, default=1, help="DuckDB threads (Vigil runs on one core)")
    ap.add_argument("--tracemalloc", action="store_true", help="also measure Vigil's Python heap peak")
    ap.add_argument("--one", nargs=2, metavar=("FAMILY", "ENGINE"), help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.rows, args.threads, args.trace)))
        return
    results = []
    for family in args.families.split(","):
        runs = {}
        for engine in ("vigil", "duckdb"):
            runs[engine] = _sub(family, engine, args, trace=False)
        if args.tracemalloc:
            runs["vigil"]["py_heap_peak_mib"] = _sub(family, "vigil", args, trace=True)["py_heap_peak_mib"]
        v, d = runs["vigil"], runs["duckdb"]
        both = len(set(v.pop("hits_sample")) & set(d["hits_sample"]))
        d.pop("hits_sample")
        results.append(
            {
                "family": family,
                "vigil": v,
                "duckdb": d,
                "agree": both,
                "ratio_vigil_to_duckdb": round(v["events_per_s"] / d["events_per_s"], 2),
                "cpu_ratio_vigil_to_duckdb": round(v["events_per_cpu_s"] / d["events_per_cpu_s"], 2),
            }
        )
        _print(results[-1])
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "rows": args.rows,
        "duckdb_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / "detectors.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwritten {out / 'detectors.json'}")


def _sub(family: str, engine: str, args: argparse.Namespace, *, trace: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        family,
        engine,
        "--rows",
        str(args.rows),
        "--threads",
        str(args.threads),
    ] + (["--trace"] if trace else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{family}/{engine} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _print(r: dict[str, Any]) -> None:
    v, d = r["vigil"], r["duckdb"]
    heap = f", py heap {v['py_heap_peak_mib']} MiB" if "py_heap_peak_mib" in v else ""
    print(
        f"{r['family']:9s} {v['detector']:18s} vigil {v['events_per_s']:>10,} ev/s ({v['seconds']:.2f} s, "
        f"+{v['peak_extra_mib']} MiB{heap})  duckdb {d['events_per_s']:>10,} ev/s ({d['seconds']:.2f} s, "
        f"+{d['peak_extra_mib']} MiB)  ratio {r['ratio_vigil_to_duckdb']} "
        f"(CPU {r['cpu_ratio_vigil_to_duckdb']})  "
        f"findings {v['findings']} / {d['findings']} (both {r['agree']})"
    )


if __name__ == "__main__":
    main()
