"""Per-detector wall time on one data set, scanned as one batch and in chunks with profiles.

    python bench/detector_micro.py DATA_DIR [--detectors a,b] [--chunks 4] [--profile OUT.prof]

``DATA_DIR`` holds canonical ``*.parquet`` (``vigil eval --out`` writes CSV: convert, or use
``vigil_lab.synth_big.big``).  The chunked run carries JSON round-tripped profiles between chunks, as the
scan cycle does, so profile reading and writing are in the figure (the JSON round trip between
chunks is not timed).  CPU seconds are printed beside wall seconds: on a shared machine they move
less.  Run by hand, never as a test.  To compare with an earlier revision, extract it
(``git archive REV | tar -x -C /tmp/old``) and run this script from there with
``PYTHONPATH=/tmp/old``.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load(path: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted(path.glob("*.parquet"))}


def chunks(frames: dict[str, pd.DataFrame], n: int) -> list[dict[str, pd.DataFrame]]:
    stamps = np.concatenate(
        [pd.to_datetime(df["ts"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
         for df in frames.values() if "ts" in df]
    )
    cuts = [None, *np.quantile(stamps, np.linspace(0, 1, n + 1)[1:-1]).astype(np.int64).tolist(), None]
    out = []
    for lo, hi in itertools.pairwise(cuts):
        part = {}
        for name, df in frames.items():
            if "ts" not in df:
                part[name] = df
                continue
            ns = pd.to_datetime(df["ts"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
            keep = np.ones(len(ns), dtype=bool)
            if lo is not None:
                keep &= ns >= lo
            if hi is not None:
                keep &= ns < hi
            part[name] = df[keep]
        out.append(part)
    return out


def main() -> None:
    from detectors import DETECTORS, Batch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--detectors", default=",".join(n for n in sorted(DETECTORS) if n != "isolation"))
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--profile", help="write a cProfile of the one-batch scans here")
    args = ap.parse_args()
    frames = load(args.data)
    now = (max(pd.to_datetime(df["ts"], utc=True).max() for df in frames.values() if "ts" in df)
           + timedelta(days=1)).to_pydatetime()
    batch = Batch.from_frames(frames)
    parts = [Batch.from_frames(p) for p in chunks(frames, args.chunks)]
    prof = cProfile.Profile() if args.profile else None
    print(f"{'detector':22s} {'one s':>7s} {'one cpu':>8s} {'chunks s':>9s} {'chunks cpu':>10s} "
          f"{'findings':>9s} {'profiles':>9s}")
    for name in args.detectors.split(","):
        det = DETECTORS[name]()
        if prof:
            prof.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        res = det.scan(batch, {}, now=now)
        one, one_cpu = time.perf_counter() - t0, time.process_time() - c0
        if prof:
            prof.disable()
        profiles: dict = {}
        split = split_cpu = 0.0
        for b in parts:
            keys = b.accounts() | det.profile_keys(b)
            mine = {k: v for k, v in profiles.items() if k in keys}
            t0, c0 = time.perf_counter(), time.process_time()
            r = det.scan(b, mine, now=now)
            split, split_cpu = split + time.perf_counter() - t0, split_cpu + time.process_time() - c0
            profiles.update(json.loads(json.dumps(r.profiles)))
        print(
            f"{name:22s} {one:7.2f} {one_cpu:8.2f} {split:9.2f} {split_cpu:10.2f} "
            f"{len(res.findings):9d} {len(res.profiles):9d}",
            flush=True,
        )
    if prof:
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    main()
