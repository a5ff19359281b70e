"""``vigil backtest`` against hand-written DuckDB SQL of four checks, side by side, in one script.

On a generated data set written as Parquet (default about 2.1 M events):

  (a) duckdb   the four checks as SQL window queries: new country, impossible travel, withdrawal
               over 5x the account's prior mean, margin ratio crossing 0.9 (tables loaded from the
               Parquet files inside the timed run)
  (b) four     ``vigil backtest`` with only the default pack's rules on those four detectors
  (c) full     ``vigil backtest`` with the whole default pack

Each is a fresh process (``vigil`` as an operator runs it); its wall time, CPU time and peak RSS come
from the kernel (``wait4``).  The *fixed start-up cost* is the same command on the first 50 rows of
every table; the *marginal* time is wall minus that, and the ratio is marginal over DuckDB's time.
The machine is shared, so each variant runs ``--repeat`` times and the median is reported, by
wall time and by CPU time (which other processes disturb less).

    python bench/backtest_bench.py                         # ~2.1 M events, 3 runs each
    python bench/backtest_bench.py --events 300000 --repeat 1 --skip-full
    python bench/backtest_bench.py --data DIR              # an existing data directory (Parquet)
    python bench/backtest_bench.py --memory-scaling 200000 # peak RSS at 1x and 10x the history
    python bench/backtest_bench.py --startup 5             # only the start-up: --help, 50-row backtest

Targets (issue 11): (b) marginal ratio <= 3.0, (c) <= 15, (c) peak RSS <= 1 GiB; 10x the history
<= 1.2x the peak memory; start-up: ``vigil --help`` under 0.3 s, the 50-row backtest under 1.5 s.
Run by hand, never as a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIGIL = [sys.executable, "-m", "vigil.cli"]
FOUR = ("logins.yaml", "logins_travel.yaml", "transfers.yaml", "leverage.yaml")  # the four detectors' rules

DUCKDB = r"""
import duckdb, sys, json, time
d = sys.argv[1]
t0, c0 = time.perf_counter(), time.process_time()
con = duckdb.connect()
for n in ("logins", "transactions", "positions"):
    con.execute(f"CREATE TABLE {n} AS SELECT * REPLACE (CAST(ts AS TIMESTAMPTZ) AS ts) "
                f"FROM read_parquet('{d}/{n}.parquet')")
q = {
 "new_country": '''
   SELECT event_id FROM (
     SELECT event_id, account_id, country,
       COUNT(*) OVER (PARTITION BY account_id, country ORDER BY ts, event_id
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seen,
       COUNT(*) OVER (PARTITION BY account_id ORDER BY ts, event_id
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS n
     FROM logins WHERE success AND country IS NOT NULL)
   WHERE seen = 0 AND n >= 3''',
 "impossible_travel": '''
   SELECT event_id FROM (
     SELECT event_id, ts, lat, lon,
       LAG(ts) OVER w AS pts, LAG(lat) OVER w AS plat, LAG(lon) OVER w AS plon
     FROM logins WHERE success AND lat IS NOT NULL AND lon IS NOT NULL
     WINDOW w AS (PARTITION BY account_id ORDER BY ts, event_id))
   WHERE pts IS NOT NULL AND (2 * 6371 * asin(sqrt(pow(sin(radians(lat - plat) / 2), 2)
         + cos(radians(plat)) * cos(radians(lat)) * pow(sin(radians(lon - plon) / 2), 2)))) > 500
     AND (2 * 6371 * asin(sqrt(pow(sin(radians(lat - plat) / 2), 2)
         + cos(radians(plat)) * cos(radians(lat)) * pow(sin(radians(lon - plon) / 2), 2))))
         / greatest(epoch(ts - pts) / 3600.0, 1.0) > 1000''',
 "large_withdrawal": '''
   SELECT event_id FROM (
     SELECT event_id, amount_usd,
       AVG(amount_usd) OVER w AS prior_mean, COUNT(*) OVER w AS prior_n
     FROM transactions WHERE kind = 'withdrawal' AND amount_usd IS NOT NULL
     WINDOW w AS (PARTITION BY account_id ORDER BY ts, event_id
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
   WHERE prior_n >= 3 AND amount_usd > 5 * prior_mean''',
 "margin_0_9": '''
   SELECT event_id FROM (
     SELECT event_id, margin_ratio,
       LAG(margin_ratio) OVER (PARTITION BY account_id, symbol ORDER BY ts, event_id) AS prev
     FROM positions WHERE margin_ratio IS NOT NULL)
   WHERE margin_ratio >= 0.9 AND (prev IS NULL OR prev < 0.9)''',
}
found = {k: len(con.execute(v).fetchall()) for k, v in q.items()}
print(json.dumps({"findings": found, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
"""


def run(cmd: list[str], cwd: str | None = None) -> dict[str, Any]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one child process, from the kernel."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024, "out": out}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def generate(path: Path, events: int, days: int = 30, seed: int = 7, accounts: int | None = None) -> dict[str, int]:
    """The benchmark set: logins, transactions and positions in the held-out set's proportions."""
    try:
        from vigil_lab import synth  # type: ignore[import-not-found]
    except ImportError:
        from vigil import synth

    n_log, n_tx = int(events * 0.444), int(events * 0.245)
    n_pos = events - n_log - n_tx
    frames = synth.big(n_log, n_tx, seed=seed, n_positions=n_pos, n_accounts=accounts or max(100, events // 143),
                       days=days)
    synth.write_dir(frames, path, fmt="parquet")
    return {n: len(df) for n, df in frames.items()}


def head(src: Path, dst: Path, rows: int = 50) -> None:
    import pyarrow.parquet as pq

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.parquet"):
        pq.write_table(pq.read_table(f).slice(0, rows), dst / f.name)


def four_pack(dst: Path) -> Path:
    from rules.loader import DEFAULT_PACK

    dst.mkdir(parents=True, exist_ok=True)
    for name in FOUR:
        shutil.copy(DEFAULT_PACK / name, dst / name)
    return dst


def backtest(data: Path, out: Path, rules: Path | None) -> list[str]:
    cmd = [*VIGIL, "backtest", "--data", str(data), "--out", str(out)]
    return cmd + (["--rules", str(rules)] if rules is not None else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_100_000)
    ap.add_argument("--data", type=Path, default=None, help="use this data directory instead of generating one")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true", help="skip (c), the slowest")
    ap.add_argument("--memory-scaling", type=int, default=0, metavar="EVENTS",
                    help="instead: peak RSS of the full backtest on EVENTS and on 10x the history")
    ap.add_argument("--chunk-events", type=int, default=0,
                    help="events per backtest chunk for --memory-scaling (default: a quarter of EVENTS)")
    ap.add_argument("--startup", type=int, default=0, metavar="N",
                    help="instead: only the start-up, N runs each of `vigil --help` and the 50-row full-pack backtest")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bt-bench-") as tmp_s:
        tmp = Path(tmp_s)
        if args.startup:
            return startup_only(tmp, args.data, args.startup)
        if args.memory_scaling:
            return memory_scaling(tmp, args.memory_scaling, args.repeat, args.chunk_events or args.memory_scaling // 4)
        data = args.data or tmp / "data"
        if args.data is None:
            t0 = time.perf_counter()
            rows = generate(data, args.events)
            print(f"data: {rows} in {time.perf_counter() - t0:.0f}s")
        small = tmp / "small"
        head(data, small)
        pack = four_pack(tmp / "four")
        out = tmp / "alerts.csv"
        variants: dict[str, tuple[list[str], list[str] | None]] = {
            "duckdb": ([sys.executable, "-c", DUCKDB, str(data)], None),
            "four": (backtest(data, out, pack), backtest(small, out, pack)),
        }
        if not args.skip_full:
            variants["full"] = (backtest(data, out, None), backtest(small, out, None))
        results: dict[str, Any] = {}
        print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
        for _ in range(args.repeat):  # interleaved, so a busy minute hurts every variant alike
            for name, (cmd, startup) in variants.items():
                results.setdefault(name, {"runs": [], "startup": []})["runs"].append(run(cmd))
                if startup is not None:
                    results[name]["startup"].append(run(startup))
        print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
        report(results)


def report(results: dict[str, Any]) -> None:
    duck = results["duckdb"]
    for r in duck["runs"]:  # the SQL's own time (loading the Parquet files included), not Python's start
        inner = json.loads(r["out"])
        r["wall"], r["cpu"], r["findings"] = inner["wall"], inner["cpu"], inner["findings"]
    d_wall, d_cpu = median(duck["runs"], "wall"), median(duck["runs"], "cpu")
    print(f"\nduckdb findings: {duck['runs'][0]['findings']}")
    print(f"{'variant':<8}{'wall s':>9}{'cpu s':>9}{'start-up s':>12}{'marginal s':>12}"
          f"{'ratio (wall)':>14}{'ratio (cpu)':>13}{'peak RSS MiB':>14}")
    table = {}
    for name, r in results.items():
        wall, cpu, rss = median(r["runs"], "wall"), median(r["runs"], "cpu"), max(x["rss_mib"] for x in r["runs"])
        s_wall = median(r["startup"], "wall") if r["startup"] else 0.0
        s_cpu = median(r["startup"], "cpu") if r["startup"] else 0.0
        m_wall, m_cpu = wall - s_wall, cpu - s_cpu
        table[name] = {"wall": wall, "cpu": cpu, "startup_wall": s_wall, "startup_cpu": s_cpu,
                       "ratio_wall": m_wall / d_wall, "ratio_cpu": m_cpu / d_cpu, "peak_rss_mib": rss}
        print(f"{name:<8}{wall:>9.2f}{cpu:>9.2f}{s_wall:>12.2f}{m_wall:>12.2f}{m_wall / d_wall:>14.2f}"
              f"{m_cpu / d_cpu:>13.2f}{rss:>14.0f}")
    print(json.dumps(table))


def startup_only(tmp: Path, data: Path | None, repeat: int) -> None:
    """The fixed cost alone: ``vigil --help`` and the full-pack backtest on 50 rows a table, N runs
    each, interleaved; medians of wall and CPU (targets 0.3 s and 1.5 s)."""
    if data is None:
        data = tmp / "data"
        generate(data, 20_000)
    small = tmp / "small"
    head(data, small)
    cmds = {"vigil --help": [*VIGIL, "--help"], "backtest, 50 rows a table": backtest(small, tmp / "alerts.csv", None)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cmds}
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    for _ in range(repeat):
        for name, cmd in cmds.items():
            runs[name].append(run(cmd))
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    for name, r in runs.items():
        cpus = ", ".join(f"{x['cpu']:.2f}" for x in r)
        print(f"{name:<28} wall {median(r, 'wall'):.2f} s  cpu {median(r, 'cpu'):.2f} s  (median of {repeat}; "
              f"cpu runs {cpus})")


def memory_scaling(tmp: Path, events: int, repeat: int, chunk: int) -> None:
    """The full backtest's peak RSS on a history of N days and on 10 N days (same accounts, same rate),
    with chunks smaller than the shorter history (memory may grow with the chunk, not the history)."""
    out = tmp / "alerts.csv"
    peaks = {}
    for label, factor in (("1x", 1), ("10x", 10)):
        data = tmp / label
        rows = generate(data, events * factor, days=30 * factor, accounts=max(100, events // 143))
        runs = [run([*backtest(data, out, None), "--chunk-events", str(chunk)]) for _ in range(repeat)]
        peaks[label] = max(r["rss_mib"] for r in runs)
        print(f"{label}: {sum(v for k, v in rows.items() if k != 'accounts'):,} events, "
              f"chunks of {chunk:,}, wall {median(runs, 'wall'):.1f}s, peak RSS {peaks[label]:.0f} MiB")
    print(f"10x history / 1x: {peaks['10x'] / peaks['1x']:.2f}x peak memory (target <= 1.2)")


if __name__ == "__main__":
    main()
