"""A data directory as time-ordered chunks of raw rows, for backtests with bounded memory.

A backtest over a year of history must not hold the year in memory.  :class:`TimeChunks` reads the
event tables' timestamps once (a count per minute, never the rows), cuts the time line into spans
of about ``chunk_events`` events across all tables, and hands out each span's raw rows in time
order; the scan carries the detectors' profiles from one chunk to the next, so the result is that
of one scan over everything (the batch-split guarantee of ``detectors/base.py``).

Parquet files are streamed record batch by record batch: a file sorted by time (the usual export)
is read once; an unsorted one is scanned once per chunk.  CSV files, and any Parquet file whose
timestamps are not a timestamp column, are read whole by :class:`vigil.sources.FileSource` (its
robust reader) and cut in memory.  Rows whose time cannot be read go with the first chunk, where
ingest quarantines them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.contract import EVENT_TABLES
from vigil.sources import FileSource

BUCKET_NS = 60 * 1_000_000_000  # chunk boundaries fall on whole minutes
READ_ROWS = 65_536  # rows per record batch read from a Parquet file
NAT = np.iinfo(np.int64).min


@dataclass
class Chunk:
    raw: dict[str, pd.DataFrame]  # table -> raw rows (canonical names, ``_ref``), ts in [lo, hi)
    lo: int | None  # ns since the epoch; None: open
    hi: int | None

    @property
    def events(self) -> int:
        return sum(len(df) for df in self.raw.values())


def ts_ns(values: Any) -> np.ndarray:
    """Epoch nanoseconds of a timestamp column (raw: timestamps, ISO text or epoch ms); NAT if unreadable."""
    from vigil.ingest import parse_ts

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = parse_ts(s)
    elif s.dt.tz is None:
        s = s.dt.tz_localize("UTC")
    out = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("int64")
    return np.asarray(out)


class _Table:
    """One event table's file: its per-minute counts, whether it is sorted, and its rows by span."""

    def __init__(self, source: FileSource, table: str) -> None:
        self.source, self.table = source, table
        self.path: Path = source.file_for(table)  # type: ignore[assignment]
        self.buckets: list[np.ndarray] = []  # (minute, count) pairs per record batch, merged in bounds
        self.unreadable = 0  # rows whose time cannot be read
        self.rows = 0
        self.sorted = True
        self.whole: pd.DataFrame | None = None  # the file read whole (CSV, text timestamps)
        self.whole_ts: np.ndarray | None = None
        self._stream: Iterator[pd.DataFrame] | None = None
        self._pending: list[pd.DataFrame] = []
        self._offset = 0
        # a mapped table (the export's own names) goes through FileSource, which applies the mapping
        self.streamable = self.path.suffix == ".parquet" and not source.mapped(table) and self._timestamp_typed()
        if self.streamable:
            last = NAT
            for ts in self._ts_batches():
                self._count(ts)
                good = ts[ts != NAT]
                if len(good):
                    if good[0] < last or (len(good) > 1 and bool((np.diff(good) < 0).any())):
                        self.sorted = False
                    last = int(good[-1])
        else:
            self.whole = source._load(table)
            self.whole_ts = ts_ns(self.whole["ts"]) if "ts" in self.whole.columns else np.full(len(self.whole), NAT)
            self._count(self.whole_ts)

    def _timestamp_typed(self) -> bool:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(self.path)
        except Exception:  # not readable as Parquet: FileSource reports it
            return False
        return "ts" in schema.names and pa.types.is_timestamp(schema.field("ts").type)

    def _count(self, ts: np.ndarray) -> None:
        self.rows += len(ts)
        good = ts[ts != NAT]
        buckets, n = np.unique(good // BUCKET_NS, return_counts=True)
        self.buckets.append(np.stack([buckets, n.astype(np.int64)]))
        self.unreadable += len(ts) - len(good)

    def _batches(self, columns: list[str] | None = None) -> Iterator[Any]:
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path) as f:  # closed with the generator, not at interpreter teardown
            batches = f.iter_batches(batch_size=READ_ROWS, columns=columns)
            try:
                yield from batches
            finally:
                del batches

    def _ts_batches(self) -> Iterator[np.ndarray]:
        for b in self._batches(["ts"]):
            yield ts_ns(b.column(0).to_pandas())

    def _frames(self) -> Iterator[pd.DataFrame]:
        offset = 0
        for b in self._batches():
            df = arrow_frame(b)
            df["_ref"] = row_refs(f"{self.path.name}:row ", offset + 1, len(df))
            offset += len(df)
            yield df

    def span(self, lo: int | None, hi: int | None, first: bool) -> pd.DataFrame:
        """The rows with lo <= ts < hi (and, in the first span, those without a readable time)."""
        if self.whole is not None:
            assert self.whole_ts is not None
            return self.whole[_mask(self.whole_ts, lo, hi, first)].reset_index(drop=True)
        if not self.sorted:  # scan the whole file for this span
            parts = [df[_mask(ts_ns(df["ts"]), lo, hi, first)] for df in self._frames()]
            return _concat(parts)
        if self._stream is None:
            self._stream = self._frames()
        parts = []
        while True:
            if not self._pending:
                nxt = next(self._stream, None)
                if nxt is None:
                    break
                self._pending.append(nxt)
            df = self._pending[0]
            ts = ts_ns(df["ts"])
            below = (ts == NAT) | (ts < hi) if hi is not None else np.ones(len(df), dtype=bool)
            cut = int(np.argmin(below)) if not below.all() else len(df)
            parts.append(df.iloc[:cut])
            if cut < len(df):
                self._pending[0] = df.iloc[cut:]
                break
            self._pending.pop(0)
        return _concat(parts)


def arrow_frame(batch: Any) -> pd.DataFrame:
    """A record batch as a frame whose text columns stay Arrow strings (no Python object per value)."""
    import pyarrow as pa

    mapping = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    return batch.to_pandas(types_mapper=mapping.get)


def row_refs(prefix: str, first: int, n: int) -> pd.Series:
    """``prefix + row number`` for ``n`` rows from ``first``, built in Arrow (ingest shows the bad ones)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = pc.cast(pa.array(np.arange(first, first + n, dtype=np.int64)), pa.string())
    refs = pc.binary_join_element_wise(pa.scalar(prefix), numbers, "")
    return pd.Series(pd.arrays.ArrowStringArray(refs))


def _mask(ts: np.ndarray, lo: int | None, hi: int | None, first: bool) -> np.ndarray:
    m = np.ones(len(ts), dtype=bool)
    if lo is not None:
        m &= ts >= lo
    if hi is not None:
        m &= ts < hi
    m &= ts != NAT
    if first:
        m |= ts == NAT
    return m


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)] or parts[:1]
    if not parts:
        return pd.DataFrame()
    return (pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]).reset_index(drop=True)


class TimeChunks:
    """Time-ordered chunks of about ``chunk_events`` events over a data directory's event tables."""

    def __init__(self, path: str | Path, chunk_events: int = 250_000, tables: Mapping[str, Any] | None = None) -> None:
        self.source = FileSource(path, tables)
        self.chunk_events = max(1, int(chunk_events))
        self.tables = {t: _Table(self.source, t) for t in EVENT_TABLES if self.source.file_for(t) is not None}
        self.total_events = sum(t.rows for t in self.tables.values())
        self.bounds = self._bounds()

    def _bounds(self) -> list[int]:
        """Inner boundaries (ns): chunk i holds lo_i <= ts < hi_i (numpy all the way: a year of
        minutes is half a million buckets)."""
        parts = [b for t in self.tables.values() for b in t.buckets]
        if not parts:
            return []
        both = np.concatenate(parts, axis=1)
        minutes, inverse = np.unique(both[0], return_inverse=True)
        counts = np.bincount(inverse, weights=both[1]).astype(np.int64)
        out: list[int] = []
        acc = 0
        for minute, n in zip(minutes.tolist(), counts.tolist(), strict=True):
            if acc and acc + n > self.chunk_events:
                out.append(minute * BUCKET_NS)
                acc = 0
            acc += n
        return out

    def __len__(self) -> int:
        return len(self.bounds) + 1

    def __iter__(self) -> Iterator[Chunk]:
        edges: list[int | None] = [None, *self.bounds, None]
        for i in range(len(edges) - 1):
            lo, hi = edges[i], edges[i + 1]
            yield Chunk({name: t.span(lo, hi, i == 0) for name, t in self.tables.items()}, lo, hi)

    def absent(self, table: str, raw: pd.DataFrame) -> frozenset[str]:
        from detectors.contract import TABLES

        return frozenset(c for c in TABLES[table].optional if c not in raw.columns)

    def accounts(self, ids: Iterable[str]) -> pd.DataFrame:
        return self.source.accounts(ids)
