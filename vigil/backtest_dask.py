"""``vigil backtest --engine dask``: the same backtest, partitioned by account across a Dask cluster.

The graph (worker functions in :mod:`vigil.backtest_parts`)::

    Parquet row groups ──read──► raw rows ─┐                        (CSV: read whole by the client,
    accounts file ─────────────────────────┴─► shuffle by account     as the local engine does)
        ─► per account partition: cut at the global chunk bounds, validate chunk by chunk
        ─► cross-account rows (logins) ─► shuffle by IP ─► credential stuffing, chunk by chunk
        ─► its findings ─► shuffle by account ─┐
        ─► per account partition: process_batch chunk by chunk (detectors, rules, alert stage)
        ─► alerts gathered, ordered by (ts, id) as the local engine orders them

Why the output is identical to ``--engine local``: the chunk bounds are computed over the whole data
set exactly as :class:`vigil.chunks.TimeChunks` computes them, so every account sees the same
batches in the same order; detectors (other than the cross-account ones) and the whole alert stage
-- dedup, throttle, group, inhibit, freeze -- are per account (throttle keys start with the account,
group and inhibit windows are an account's); the cross-account detectors see every account's rows of
their key (an IP's logins), chunk by chunk with their profiles carried; alert ids hash the rule, the
detector, the account and the triggering event, never the processing order.

``--workers N`` starts a ``LocalCluster`` of N single-threaded worker processes; ``--scheduler
ADDRESS`` joins a running cluster, whose workers must see the data directory at the same path.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from rules.loader import RuleSet
from vigil.backtest import CHUNK_EVENTS, BacktestResult
from vigil.errors import ConfigError

READ_ROWS = 250_000  # rows per read task (Parquet row groups are grouped up to about this many)
# the local cluster's housekeeping costs CPU in proportion to the wall time, taken from the tasks on
# a busy machine: the statistical profiler samples the running task every 10 ms (a dashboard feature;
# no dashboard here), the event-loop tick runs every 20 ms and the system monitor every 500 ms.
# Measured on an idle worker: 17 ms of CPU per second with the defaults, 4 ms with these.
LOCAL_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}
__all__ = ["bounds_of", "engine_runner", "run_backtest_dask"]


def run_backtest_dask(
    data: str | Path | Mapping[str, pd.DataFrame],
    rules_path: str | None = None,
    *,
    rules: RuleSet | None = None,
    batch_rows: int = CHUNK_EVENTS,
    now: datetime | None = None,
    geo: Any = "default",
    tables: Mapping[str, Any] | None = None,
    progress: TextIO | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    partitions: int | None = None,
) -> BacktestResult:
    """:func:`vigil.backtest.run_backtest` on Dask; the same result (alerts, counts, quarantine)."""
    from vigil.bootstrap import load_rule_set

    rules = rules or load_rule_set(rules_path)
    now = now or datetime.now(UTC)
    result = BacktestResult(rule_set=rules.content_hash[:16])
    with tempfile.TemporaryDirectory(prefix="vigil-backtest-") as tmp:
        if isinstance(data, Mapping):
            for name, df in data.items():
                df.to_parquet(Path(tmp) / f"{name}.parquet", index=False)
            data_dir = Path(tmp)
        else:
            data_dir = Path(data).absolute()
        with _client(workers, scheduler) as client:
            _Run(client, data_dir, rules, now, geo, max(1, int(batch_rows)), tables, progress, partitions,
                 result).run()
    return result


def engine_runner(engine: str, *, scheduler: str | None = None, workers: int | None = None) -> Any:
    """``run_backtest`` for ``--engine local``, or its Dask twin (dask itself is imported when it runs)."""
    if engine == "local":
        if scheduler or workers:
            raise ConfigError("--scheduler and --workers go with --engine dask")
        from vigil.backtest import run_backtest

        return run_backtest
    if scheduler and workers:
        raise ConfigError("--scheduler joins a running cluster, --workers starts one: give only one of them")
    from functools import partial

    return partial(run_backtest_dask, scheduler=scheduler, workers=workers)


@contextmanager
def _client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("the Dask engine needs the 'dask' extra: pip install 'vigil-alerts[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise ConfigError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({e})") from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with _quiet_local_cluster(), dask.config.set(LOCAL_CONFIG), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0",
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def _quiet_local_cluster() -> Iterator[None]:
    """The local cluster's scheduler and nannies log to this process at INFO level; keep that off the
    user's terminal while the cluster lives and until it has closed.

    ``silence_logs`` only reaches the worker processes.  A worker's connection closing while the
    cluster shuts down is logged at INFO *with a traceback* (distributed.batched) — not an error of
    the backtest, but it reads like one.  Errors are still shown.
    """
    log = logging.getLogger("distributed")
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


def bounds_of(minutes: np.ndarray, counts: np.ndarray, chunk_events: int) -> np.ndarray:
    """Inner chunk bounds (ns) from (minute, count) pairs, as :meth:`vigil.chunks.TimeChunks._bounds`."""
    from vigil.chunks import BUCKET_NS

    if not len(minutes):
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(minutes, return_inverse=True)
    per = np.bincount(inverse, weights=counts).astype(np.int64)
    out: list[int] = []
    acc = 0
    for minute, n in zip(uniq.tolist(), per.tolist(), strict=True):
        if acc and acc + n > chunk_events:
            out.append(minute * BUCKET_NS)
            acc = 0
        acc += n
    return np.asarray(out, dtype=np.int64)


class _Run:
    def __init__(self, client: Any, data_dir: Path, rules: RuleSet, now: datetime, geo: Any, chunk_events: int,
                 tables: Mapping[str, Any] | None, progress: TextIO | None, partitions: int | None,
                 result: BacktestResult) -> None:
        from vigil.backtest_rules import spec_of
        from vigil.sources import FileSource

        self.client, self.rules, self.now, self.geo, self.result = client, rules, now, geo, result
        self.chunk_events, self.progress = chunk_events, progress
        self.source = FileSource(data_dir, tables)
        self.spec = spec_of(rules)
        threads = sum(client.nthreads().values()) or 1
        self.partitions = max(1, int(partitions or threads))

    def run(self) -> None:
        import dask
        import dask.dataframe as dd
        from dask import delayed

        from detectors.contract import EVENT_TABLES
        from vigil.backtest_keys import ACCT, CHUNK, KEY, add_keys, key_hash
        from vigil.backtest_parts import (
            CROSS_KEYS,
            cross_findings,
            cross_rows,
            process_partition,
            run_cross,
            validate_partition,
        )

        t0 = time.perf_counter()
        plan = {t: self._plan(t) for t in EVENT_TABLES if self.source.file_for(t) is not None}
        for t in plan:
            self.result.rows[t] += 0
        bounds, total = self._bounds(plan)
        firsts = self._duplicates(plan, bounds)
        self.result.timings["read"] = time.perf_counter() - t0
        n_chunks = len(bounds) + 1
        self.result.chunks = n_chunks
        self.result.problems, self.result.notes = dict(self.source.problems), list(self.source.notes)
        if not plan:
            return
        P = self.partitions
        absent = {t: p["absent"] for t, p in plan.items()}
        attrs = {t: p["attrs"] for t, p in plan.items()}
        with dask.config.set({"dataframe.convert-string": False}):
            pieces = {t: self._frame(p).shuffle(on=ACCT, npartitions=P, shuffle_method="tasks").to_delayed()
                      for t, p in plan.items()}
            acc = self.source._load("accounts") if self.source.file_for("accounts") is not None else pd.DataFrame()
            has_accounts = not acc.empty and "account_id" in acc.columns
            acc_pieces: list[Any] = [None] * P
            acc_attrs = dict(acc.attrs)
            if has_accounts:
                acc = add_keys(acc.copy(), 0, account_column=False)
                acc[ACCT] = key_hash(acc["account_id"].astype(str))
                acc_pieces = dd.from_pandas(acc, npartitions=_nparts(len(acc)), sort=False).shuffle(
                    on=ACCT, npartitions=P, shuffle_method="tasks").to_delayed()
            validated = [delayed(validate_partition)({t: pieces[t][k] for t in plan}, bounds, attrs, firsts)
                         for k in range(P)]
            groups: dict[tuple[str, str | None], list[str]] = {}
            for name, det in self.rules.detectors.items():
                if getattr(det, "cross_account", False) and self.rules.for_detector(name) and det.table in plan:
                    groups.setdefault((det.table, CROSS_KEYS.get(name)), []).append(name)
            names = tuple(n for ns in groups.values() for n in ns)
            found: list[Any] = []
            skips: list[Any] = []
            for (table, key), group in groups.items():
                meta = self._validated_meta(table, plan[table])
                meta[CHUNK], meta[KEY] = pd.Series([], dtype=np.int64), pd.Series([], dtype=np.uint64)
                rows = dd.from_delayed([delayed(cross_rows)(v, table, key) for v in validated], meta=meta,
                                       verify_meta=False)
                by_key = rows.shuffle(on=KEY, npartitions=P, shuffle_method="tasks").to_delayed()
                crossed = [delayed(run_cross)(piece, n_chunks, self.spec, tuple(group), absent, self.geo, self.now)
                           for piece in by_key]
                skips.extend(delayed(_skips)(c) for c in crossed)
                fmeta = pd.DataFrame({ACCT: pd.Series([], dtype=np.uint64), CHUNK: pd.Series([], dtype=np.int64),
                                      "finding": pd.Series([], dtype=object)})
                found.append(dd.from_delayed([delayed(cross_findings)(c) for c in crossed], meta=fmeta,
                                             verify_meta=False))
            cross_pieces: list[Any] = [None] * P
            if found:
                allf = dd.concat(found) if len(found) > 1 else found[0]
                cross_pieces = allf.shuffle(on=ACCT, npartitions=P, shuffle_method="tasks").to_delayed()
            parts = [delayed(process_partition)(validated[k], cross_pieces[k], acc_pieces[k], acc_attrs,
                                                has_accounts, self.spec, names, absent, self.geo, self.now)
                     for k in range(P)]
            futures = self.client.compute(parts + skips)
            self._wait(futures, total)
            out = self.client.gather(futures)
        self._merge(out[:P], out[P:])
        self.result.timings["wall"] = time.perf_counter() - t0

    def _plan(self, table: str) -> dict[str, Any]:
        """How a table is read: Parquet row-group ranges by the workers, or whole by the client."""
        from detectors.contract import TABLES
        from vigil.backtest_keys import Part, add_keys

        path = self.source.file_for(table)
        assert path is not None
        if path.suffix == ".parquet" and not self.source.mapped(table) and _timestamp_typed(path):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            parts: list[Part] = []
            groups: list[int] = []
            first = rows = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if groups and rows + n > READ_ROWS:
                    parts.append(Part(table, str(path), tuple(groups), first))
                    first, rows, groups = first + rows, 0, []
                groups.append(g)
                rows += n
            if groups:
                parts.append(Part(table, str(path), tuple(groups), first))
            names = pq.read_schema(path).names
            absent = frozenset(c for c in TABLES[table].optional if c not in names)
            return {"parts": parts, "whole": None, "absent": absent, "attrs": {}, "path": path}
        whole = self.source._load(table)  # CSV, mapped or text timestamps: the robust reader, as locally
        absent = frozenset(c for c in TABLES[table].optional if c not in whole.columns)
        return {"parts": [], "whole": add_keys(whole.copy(), 0), "absent": absent, "attrs": dict(whole.attrs),
                "path": path}

    def _bounds(self, plan: Mapping[str, dict[str, Any]]) -> tuple[np.ndarray, int]:
        from dask import delayed

        from vigil.backtest_keys import TSN, minute_counts
        from vigil.chunks import BUCKET_NS, NAT

        pairs: list[np.ndarray] = []
        total = 0
        tasks = [delayed(minute_counts)(part) for p in plan.values() for part in p["parts"]]
        for mc, n in self.client.gather(self.client.compute(tasks)) if tasks else []:
            pairs.append(mc)
            total += n
        for p in plan.values():
            if p["whole"] is not None:
                ts = p["whole"][TSN].to_numpy(dtype=np.int64)
                good = ts[ts != NAT]
                b, n_ = np.unique(good // BUCKET_NS, return_counts=True)
                pairs.append(np.stack([b, n_.astype(np.int64)]))
                total += len(ts)
        if not pairs:
            return np.zeros(0, dtype=np.int64), total
        both = np.concatenate(pairs, axis=1)
        return bounds_of(both[0], both[1], self.chunk_events), total

    def _duplicates(self, plan: Mapping[str, dict[str, Any]], bounds: np.ndarray
                    ) -> dict[str, dict[tuple[int, str], int]]:
        """Event ids that several rows of a table share: counted by hash over every read part (one
        aggregation, usually empty), then the few rows behind them are placed by chunk."""
        import dask
        import dask.dataframe as dd
        from dask import delayed

        from vigil.backtest_keys import event_keys, firsts_of, part_event_keys, twins

        meta = pd.DataFrame({"h": pd.Series([], dtype=np.uint64)})
        with dask.config.set({"dataframe.convert-string": False}):
            keys = [dd.from_map(part_event_keys, p["parts"], meta=meta, enforce_metadata=False)
                    for p in plan.values() if p["parts"]]
            keys += [dd.from_pandas(event_keys(p["whole"], t), npartitions=_nparts(len(p["whole"])), sort=False)
                     for t, p in plan.items() if p["whole"] is not None and len(p["whole"])]
            if not keys:
                return {}
            allk = dd.concat(keys) if len(keys) > 1 else keys[0]
            counts = allk["h"].value_counts(split_out=self.partitions)
            dups = np.asarray(self.client.compute(counts[counts > 1]).result().index, dtype=np.uint64)
        if not len(dups):
            return {}
        firsts: dict[str, dict[tuple[int, str], int]] = {}
        for t, p in plan.items():
            if p["whole"] is not None:
                rows = twins(None, p["whole"], t, dups)
            else:
                found = self.client.gather(self.client.compute([delayed(twins)(part, None, t, dups)
                                                                for part in p["parts"]]))
                rows = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
            f = firsts_of(rows, bounds)
            if f:
                firsts[t] = f
        return firsts

    def _frame(self, p: Mapping[str, Any]) -> Any:
        import dask.dataframe as dd

        from vigil.backtest_keys import read_part

        if p["whole"] is not None:
            return dd.from_pandas(p["whole"], npartitions=_nparts(len(p["whole"])), sort=False)
        return dd.from_map(read_part, p["parts"], meta=_parquet_meta(p["path"]), enforce_metadata=False)

    def _validated_meta(self, table: str, p: Mapping[str, Any]) -> pd.DataFrame:
        from vigil.backtest_keys import HELPERS
        from vigil.ingest import validate

        raw = p["whole"].iloc[:0] if p["whole"] is not None else _parquet_meta(p["path"])
        raw = raw.drop(columns=[c for c in HELPERS if c in raw.columns])
        return validate(table, raw)[0]

    def _wait(self, futures: list[Any], total: int) -> None:
        if self.progress is None:
            from distributed import wait

            wait(futures)
            return
        from vigil.backtest_progress import TaskProgress

        TaskProgress(futures, self.progress, total)

    def _merge(self, parts: list[Any], cross_skips: list[Counter[str]]) -> None:
        res = self.result
        keyed: list[tuple[Any, dict[str, Any]]] = []
        quarantined: list[tuple[Any, Any]] = []
        for p in parts:
            keyed.extend(zip(p.sort_keys, p.alerts, strict=True))
            quarantined.extend(p.quarantined)
            res.rows.update(p.rows)
            res.findings += p.findings
            res.throttled += p.throttled
            res.skips.update(p.skips)
            for phase, secs in p.timings.items():
                res.timings[phase] = res.timings.get(phase, 0.0) + secs
        for s in cross_skips:
            res.skips.update(s)
        keyed.sort(key=lambda kv: kv[0])
        res.alerts = [a for _k, a in keyed]
        quarantined.sort(key=lambda kq: kq[0])
        res.quarantined = [q for _k, q in quarantined]


def _skips(c: Any) -> Counter[str]:
    return c.skips  # type: ignore[no-any-return]


def _nparts(rows: int) -> int:
    return max(1, math.ceil(rows / READ_ROWS))


def _timestamp_typed(path: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # not readable as Parquet: the robust reader reports it
        return False
    return "ts" in schema.names and pa.types.is_timestamp(schema.field("ts").type)


def _parquet_meta(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    from vigil.backtest_keys import add_keys
    from vigil.chunks import arrow_frame

    df = arrow_frame(pq.read_schema(path).empty_table())
    df["_ref"] = pd.Series([], dtype=pd.StringDtype("pyarrow"))
    return add_keys(df, 0)
