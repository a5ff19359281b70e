"""``vigil backtest``: the local engine against the Dask engine on 1 and 2 workers, same data, same output.

On a generated data set written as Parquet (``vigil_lab.synth.big``, default about 600 k events):

  (a) local     ``--engine local``: one process
  (b) dask 1    ``--engine dask --workers 1``: a LocalCluster with one worker process
  (c) dask 2    ``--engine dask --workers 2``

Each run is in this process (the cluster's workers are separate processes); the Dask runs are timed
with and without starting the cluster.  Every run's alert ids are checked equal to the local ones.
Also printed: the per-partition costs (CPU seconds per phase, summed over partitions) and the shuffle
volume (bytes of raw rows per event), the inputs of the N-machine model in ``docs/scaling.md``.

    python bench/backtest_scaling.py                   # ~600 k events, 1 run each
    python bench/backtest_scaling.py --events 200000 --repeat 2
    python bench/backtest_scaling.py --data DIR        # an existing Parquet data directory

Target (issue 12): (c) at least 1.6x faster than (b) on 2 cores.  Run by hand, never as a timed test;
the machine may be shared: the load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def make_data(events: int, out: Path) -> Path:
    from vigil_lab.synth import big, write_dir

    n = max(events // 5, 1)
    frames = big(n_logins=2 * n, n_transactions=2 * n, n_positions=n // 2, seed=7)
    write_dir(frames, out, "parquet")
    return out


def shuffle_bytes(d: Path) -> dict[str, float]:
    """Raw rows in memory (what the account shuffle moves) and the logins (the IP shuffle), per event."""
    import pandas as pd

    from detectors.contract import EVENT_TABLES

    total_bytes = logins_bytes = events = 0
    for t in EVENT_TABLES:
        p = d / f"{t}.parquet"
        if not p.exists():
            continue
        df = pd.read_parquet(p, dtype_backend="pyarrow")
        b = int(df.memory_usage(deep=True).sum())
        total_bytes += b
        events += len(df)
        if t == "logins":
            logins_bytes = b
    return {"events": events, "bytes_per_event": total_bytes / max(events, 1),
            "login_bytes_per_event": logins_bytes / max(events, 1)}


def relax_budget() -> None:
    """Rule conditions over their time budget switch off for the batch (rules.limits): on a shared
    machine that makes the alerts depend on the load, so the budget is lifted for the comparison."""
    import rules.engine

    rules.engine.EVAL_BUDGET_SECONDS = 60.0  # type: ignore[misc]


def run(engine: str, d: Path, chunk: int, workers: int | None = None) -> dict[str, Any]:
    from vigil.backtest import run_backtest
    from vigil.backtest_dask import run_backtest_dask

    relax_budget()
    t0 = time.perf_counter()
    if engine == "local":
        c0 = time.process_time()
        res = run_backtest(d, batch_rows=chunk, now=NOW)
        cluster_s, cpu = 0.0, [time.process_time() - c0]
    else:
        import dask
        from distributed import Client, LocalCluster

        from vigil.backtest_dask import LOCAL_CONFIG

        with dask.config.set(LOCAL_CONFIG), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address="127.0.0.1:0") as c, \
                Client(c) as client:
            client.run(relax_budget)
            cluster_s = time.perf_counter() - t0
            before = client.run(time.process_time)
            res = run_backtest_dask(d, batch_rows=chunk, now=NOW, scheduler=c.scheduler_address)
            after = client.run(time.process_time)
            cpu = [after[w] - before[w] for w in sorted(after)]
    wall = time.perf_counter() - t0
    return {"wall": wall, "work": wall - cluster_s, "cluster": cluster_s, "alerts": [a["alert_id"] for a in res.alerts],
            "timings": res.timings, "chunks": res.chunks, "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=600_000)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--chunk", type=int, default=250_000, help="events per chunk (--chunk-events)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vigil-scaling-") as tmp:
        d = args.data or make_data(args.events, Path(tmp) / "data")
        vol = shuffle_bytes(d)
        print(f"data: {vol['events']:,} events in {d}; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
        runs: dict[str, list[dict[str, Any]]] = {}
        for name, engine, workers in (("local", "local", None), ("dask1", "dask", 1), ("dask2", "dask", 2)):
            for _ in range(args.repeat):
                r = run(engine, d, args.chunk, workers)
                runs.setdefault(name, []).append(r)
                print(f"  {name:6s} wall {r['wall']:7.2f} s   without cluster start {r['work']:7.2f} s   "
                      f"CPU per process {[round(c, 2) for c in r['cpu']]} s   alerts {len(r['alerts'])}",
                      flush=True)
        ref = runs["local"][0]["alerts"]
        same = all(r["alerts"] == ref for rs in runs.values() for r in rs)
        med = {k: statistics.median(r["work"] for r in v) for k, v in runs.items()}
        load1 = os.getloadavg()
        t2 = runs["dask2"][0]["timings"]
        phases = {k: round(v, 2) for k, v in sorted(t2.items(), key=lambda kv: -kv[1]) if v >= 0.05}
        report = {
            "events": vol["events"], "chunks": runs["local"][0]["chunks"], "same_alert_ids": same,
            "seconds": {k: round(v, 2) for k, v in med.items()},
            "events_per_s": {k: round(vol["events"] / v) for k, v in med.items()},
            "speedup_2_vs_1_workers": round(med["dask1"] / med["dask2"], 2),
            "dask1_vs_local": round(med["local"] / med["dask1"], 2),
            "dask2_vs_local": round(med["local"] / med["dask2"], 2),
            "cluster_start_s": round(statistics.median(r["cluster"] for r in runs["dask2"]), 2),
            # on a machine shared with other work, CPU time says what the cores would give: the 2-worker
            # run's critical path is its busiest worker
            "cpu_s": {k: [round(c, 2) for c in v[0]["cpu"]] for k, v in runs.items()},
            "cpu_speedup_2_vs_1_workers": round(sum(runs["dask1"][0]["cpu"]) / max(runs["dask2"][0]["cpu"]), 2),
            "shuffle_bytes_per_event": round(vol["bytes_per_event"], 1),
            "ip_shuffle_bytes_per_event": round(vol["login_bytes_per_event"], 1),
            "dask2_cpu_seconds_by_phase": phases,
            "load_average_before_after": [round(load0[0], 2), round(load1[0], 2)],
        }
        print(json.dumps(report, indent=2))
        if not same:
            sys.exit("the engines disagree on the alert ids")


if __name__ == "__main__":
    main()
