"""Ingest read and validation cost, as ratios against a peer run in the same process.

    .venv/bin/python bench/ingest_bench.py [ROWS]

* ``read_csv`` (the verified fast path: a NUL check, warnings as errors, one line per row) against
  plain ``pandas.read_csv`` of the same file: the price of never reading a file silently wrong;
* the exact path (the same file with one extra-field line, read record by record with Python's
  ``csv``) against the fast path: what one broken line costs;
* ``validate`` of the parsed logins, in rows per second.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from vigil.datafile import read_csv
from vigil.ingest import validate


def _write(path: Path, rows: int, broken: bool) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("event_id,account_id,ts,success,ip,country,city,device_id,user_agent\n")
        for i in range(rows):
            f.write(f"e{i},A{i % 5000},2026-03-01T08:{i % 60:02d}:00Z,true,10.0.{i % 255}.{i % 7},KR,Seoul,"
                    f"dev-{i % 999},Mozilla/5.0\n")
            if broken and i == rows // 2:
                f.write("bad,A1,2026-03-01T08:00:00Z,true,1.2.3.4,KR,Seoul,dev,UA,extra\n")


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp) / "good.csv", Path(tmp) / "bad.csv"
        _write(good, rows, False)
        _write(bad, rows, True)
        plain = _best(lambda: pd.read_csv(good, dtype=str, keep_default_na=False, na_values=[""]))
        fast = _best(lambda: read_csv(good))
        exact = _best(lambda: read_csv(bad), repeat=1)
        df = read_csv(good)
        assert df is not None
        check = _best(lambda: validate("logins", df), repeat=1)
    print(f"rows: {rows}")
    print(f"pandas.read_csv            {plain:7.2f} s")
    print(f"read_csv (fast path)       {fast:7.2f} s   ratio to pandas {fast / plain:5.2f}")
    print(f"read_csv (one bad line)    {exact:7.2f} s   ratio to fast   {exact / fast:5.2f}")
    print(f"validate logins            {check:7.2f} s   {rows / check:,.0f} rows/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
