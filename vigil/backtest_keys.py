"""The keys of the Dask backtest's rows: file order, account hash, time, chunk -- and event-id twins.

Helpers of :mod:`vigil.backtest_parts` (what runs in a task): reading a Parquet row-group range with
the helper columns the shuffles need, the per-minute counts the chunk bounds come from, and the
event ids that several rows share (ingest quarantines all but the first copy within a chunk, across
accounts, so the account partitions must agree on which copy is first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.chunks import NAT, arrow_frame, row_refs, ts_ns

SEQ, ACCT, TSN, CHUNK, KEY = "_seq", "_ah", "_tsn", "_c", "_kh"  # helper columns, dropped before ingest
HELPERS = (SEQ, ACCT, TSN, CHUNK, KEY)
HASH_KEY = "vigil-backtest-0"  # 16 bytes: the same hash everywhere, on every worker


@dataclass(frozen=True)
class Part:
    """One read task: a range of row groups of a Parquet file whose ``ts`` is a timestamp column."""

    table: str
    path: str
    groups: tuple[int, ...]
    first_row: int  # 0-based row number of the range's first row in the file


def text_key(values: pd.Series) -> pd.Series:
    """Stripped text (what ingest makes of an id), "" when blank: the shuffle key before validation."""
    from vigil.ingest import _blank, _texts

    if len(values) == 0:
        return pd.Series([], dtype=object)
    return _texts(values, _blank(values)).astype(object)


def key_hash(values: pd.Series | np.ndarray) -> np.ndarray:
    """A 64-bit hash of each text value, stable across processes and machines."""
    arr = np.asarray(pd.Series(values, dtype=object).fillna("").astype(str), dtype=object)
    return np.asarray(pd.util.hash_array(arr, hash_key=HASH_KEY, categorize=False), dtype=np.uint64)


def add_keys(df: pd.DataFrame, first_row: int, *, account_column: bool = True) -> pd.DataFrame:
    """The helper columns: file order, the account hash (shuffle key) and the time in ns."""
    n = len(df)
    df[SEQ] = np.arange(first_row, first_row + n, dtype=np.int64)
    if account_column and "account_id" in df.columns:
        df[ACCT] = key_hash(text_key(df["account_id"]))
    else:
        df[ACCT] = np.zeros(n, dtype=np.uint64)
    if "ts" in df.columns:
        df[TSN] = ts_ns(df["ts"]) if n else np.zeros(0, dtype=np.int64)
    else:
        df[TSN] = np.full(n, NAT, dtype=np.int64)
    return df


def read_part(part: Part) -> pd.DataFrame:
    """The part's raw rows as the local engine reads them (Arrow strings, ``_ref`` = file row)."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(part.path)
    df = arrow_frame(f.read_row_groups(list(part.groups)))
    df["_ref"] = row_refs(f"{Path(part.path).name}:row ", part.first_row + 1, len(df))
    return add_keys(df, part.first_row)


def minute_counts(part: Part) -> tuple[np.ndarray, int]:
    """(minute, count) pairs of the part's readable times, and how many rows it has."""
    import pyarrow.parquet as pq

    from vigil.chunks import BUCKET_NS

    f = pq.ParquetFile(part.path)
    ts = ts_ns(f.read_row_groups(list(part.groups), columns=["ts"]).column(0).to_pandas())
    good = ts[ts != NAT]
    buckets, n = np.unique(good // BUCKET_NS, return_counts=True)
    return np.stack([buckets, n.astype(np.int64)]), len(ts)


def event_keys(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Each row's event id as ingest reads it, hashed with its table: duplicates are found by hash."""
    eid = text_key(df["event_id"]) if "event_id" in df.columns else pd.Series([""] * len(df), dtype=object)
    return pd.DataFrame({"h": key_hash(table + "\x1f" + eid.astype(str))})


def part_event_keys(part: Part) -> pd.DataFrame:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(part.path)
    if "event_id" not in f.schema_arrow.names:
        return pd.DataFrame({"h": pd.Series([], dtype=np.uint64)})
    df = arrow_frame(f.read_row_groups(list(part.groups), columns=["event_id"]))
    return event_keys(df, part.table)


def twins(part: Part | None, frame: pd.DataFrame | None, table: str, dups: np.ndarray) -> pd.DataFrame:
    """The rows whose event id is among the duplicated hashes: (seq, time, event id)."""
    if part is not None:
        df = read_part(part)
    else:
        assert frame is not None
        df = frame
    if not len(dups) or "event_id" not in df.columns:
        return pd.DataFrame({SEQ: [], TSN: [], "eid": []})
    hit = np.isin(event_keys(df, table)["h"].to_numpy(), dups)
    sub = df[hit]
    return pd.DataFrame({SEQ: sub[SEQ].to_numpy(), TSN: sub[TSN].to_numpy(),
                         "eid": text_key(sub["event_id"]).to_numpy()})


def firsts_of(rows: pd.DataFrame, bounds: np.ndarray) -> dict[tuple[int, str], int]:
    """For each (chunk, event id) held by several rows of a table: the first row's number in the file.
    Ingest keeps that row and quarantines the others as duplicates, whichever accounts they name."""
    if rows.empty:
        return {}
    rows = rows.assign(c=chunk_of(rows[TSN].to_numpy(dtype=np.int64), bounds))
    rows = rows[rows["eid"] != ""]
    g = rows.groupby(["c", "eid"])[SEQ].agg(["min", "size"])
    g = g[g["size"] > 1]
    return {(int(k[0]), str(k[1])): int(m) for k, m in zip(g.index.tolist(), g["min"].tolist(), strict=True)}


GHOST = "\x00twin:"  # the _ref of a stand-in row: the first of a duplicate event id kept elsewhere


def with_ghosts(raw: pd.DataFrame, seqs: np.ndarray, chunk: int, firsts: Mapping[tuple[int, str], int]
                 ) -> pd.DataFrame:
    """Put before ``raw`` a copy of each duplicate event id's first local row whose file-first twin
    is in another partition, so ingest flags every local copy as a duplicate, as it does locally."""
    if not firsts or raw.empty or "event_id" not in raw.columns:
        return raw
    eids = text_key(raw["event_id"]).tolist()
    present = set(seqs.tolist())
    need: dict[str, int] = {}
    for pos, e in enumerate(eids):
        first = firsts.get((chunk, e))
        if first is not None and first not in present and e not in need:
            need[e] = pos
    if not need:
        return raw
    ghosts = raw.iloc[list(need.values())].copy()
    ghosts["_ref"] = [f"{GHOST}{i}" for i in range(len(ghosts))]
    out = pd.concat([ghosts, raw], ignore_index=True)
    out.attrs = dict(raw.attrs)
    return out


def chunk_of(tsn: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The chunk index of each row: bounds[i-1] <= ts < bounds[i]; unreadable times go with chunk 0."""
    c = np.searchsorted(bounds, tsn, side="right")
    c[tsn == NAT] = 0
    return c
