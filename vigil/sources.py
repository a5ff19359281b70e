"""Sources of canonical rows: a SQL database (the engine's own or a separate read-only one) or a
data directory of CSV / Parquet files.

Reads are incremental from a cursor so every row is processed once, late rows included:

* an integer cursor (an id or the engine's ``ingest_seq``) remembers the *gaps* it saw -- ids
  allocated by transactions that had not committed yet -- and re-checks them for
  ``gap_grace_seconds``, so a row committed late is still read;
* a timestamp cursor (an insertion time) reads only rows older than ``settle_seconds`` and never
  splits rows that share the last timestamp across two reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    and_,
    func,
    inspect,
    literal_column,
    null,
    select,
    union_all,
)

from confkit import closest
from detectors.contract import EVENT_TABLES, TABLES
from vigil.errors import ConfigError, SourceError
from vigil.files import FileSource
from vigil.ingest import declare_ts
from vigil.mapping import MappingError, plan
from vigil.readresult import ReadResult

if TYPE_CHECKING:  # the settings models (and the channel configs they hold) only where a source is built
    from vigil.settings import SourceSettings, TableMap

log = logging.getLogger(__name__)
MAX_TRACKED_GAPS = 10_000


class SqlSource:
    """Canonical tables in a SQL database, mapped by configuration."""

    kind = "sql"

    def __init__(self, engine: Engine, settings: SourceSettings, *, own: bool = False) -> None:
        self.engine = engine
        self.settings = settings
        self.own = own  # the engine's own database: read inside the scan's transaction
        self._tables: dict[str, tuple[Table, TableMap, dict[str, str]]] = {}
        self._inspected = False

    def _inspect(self) -> None:
        if self._inspected:
            return
        from vigil.settings import TableMap

        insp = inspect(self.engine)
        names = set(insp.get_table_names())
        md = MetaData()
        for name, contract in TABLES.items():
            tmap = self.settings.tables.get(name) or TableMap(table=name)
            phys_table = tmap.table or name
            if phys_table not in names:
                if name in self.settings.tables:
                    raise ConfigError(f"source.tables.{name}.table: table {phys_table!r} not found in the source")
                continue
            t = Table(phys_table, md, autoload_with=self.engine)
            physical = [c.name for c in t.columns]
            unknown = sorted(set(tmap.columns) - set(contract.names))
            if unknown:
                raise ConfigError(f"source.tables.{name}.columns: {unknown} are not columns of the contract "
                                  f"table {name!r} (known: {', '.join(contract.names)})")
            colmap: dict[str, str] = {}
            for canon in contract.names:
                phys = tmap.columns.get(canon, canon)
                if phys in physical:
                    colmap[canon] = phys
                elif canon in tmap.columns:
                    close = closest(phys, physical)
                    raise ConfigError(f"source.tables.{name}.columns.{canon}: column {phys!r} not found "
                                      f"in table {phys_table!r}" + (f"; did you mean {close!r}?" if close else ""))
            if any(c not in colmap for c in contract.required):
                try:  # every missing column at once, each with a guess, and the snippet to paste
                    plan(name, physical, colmap, filename=f"table {phys_table!r}", where=f"source.tables.{name}",
                         mapped_table=phys_table, specials=False)
                except MappingError as e:
                    raise ConfigError(str(e)) from None
            if contract.is_event and tmap.cursor not in physical:
                raise ConfigError(f"source.tables.{name}.cursor: column {tmap.cursor!r} not found in {phys_table!r}")
            self._tables[name] = (t, tmap, colmap)
        self._inspected = True

    def tables(self) -> list[str]:
        self._inspect()
        return [n for n in EVENT_TABLES if n in self._tables]

    def read(
        self, table: str, state: Mapping[str, Any], limit: int, now: datetime, conn: Connection | None = None,
        shard: tuple[int, int] | None = None,
    ) -> ReadResult:
        """Rows past the cursor in ``state``, at most ``limit``.

        ``shard`` = (index, count): only the rows of that account shard (``vigil.shards.shard_of``),
        filtered by the database where it can compute the hash (PostgreSQL; ``sharded`` is then True),
        so a replica reads its accounts' rows and not the whole table.  Elsewhere every row comes back
        and the scan keeps the shard's rows itself.
        """
        self._inspect()
        t, tmap, colmap = self._tables[table]
        cur = t.c[tmap.cursor]
        cols = [t.c[phys].label(canon) for canon, phys in colmap.items()] + [cur.label("_cursor")]
        absent = frozenset(c for c in TABLES[table].optional if c not in colmap)
        where = None
        if shard is not None and self.engine.dialect.name == "postgresql" and "account_id" in colmap:
            from vigil.shards import shard_clause

            where = shard_clause(t.c[colmap["account_id"]], count=shard[1], index=shard[0])
        own_conn = conn is None or not self.own
        c = self.engine.connect() if own_conn else conn
        assert c is not None
        try:
            if tmap.cursor_kind == "int":
                res = self._read_int(c, t, cols, cur, table, state, limit, now, absent, where)
            else:
                res = self._read_ts(c, cols, cur, table, state, limit, now, absent, where)
            res.sharded = where is not None
            declare_ts(res.raw, tmap)
            return res
        except Exception as e:  # a broken source must not look like an empty one
            if isinstance(e, ConfigError | SourceError):
                raise
            raise SourceError(f"cannot read source table {tmap.table!r} ({table}): {e}") from e
        finally:
            if own_conn:
                c.close()

    def _read_int(self, c: Connection, t: Table, cols: list[Any], cur: Any, table: str,
                  state: Mapping[str, Any], limit: int, now: datetime, absent: frozenset[str],
                  where: Any = None) -> ReadResult:
        pos = int(state.get("pos", 0))
        gaps: dict[str, str] = dict(state.get("gaps", {}))
        if where is not None:
            return self._read_int_shard(c, t, cols, cur, table, pos, gaps, limit, now, absent, where)
        rows = c.execute(select(*cols).where(cur > pos).order_by(cur).limit(limit)).mappings().all()
        frame = pd.DataFrame(rows, columns=[col.key for col in cols])
        filled = pd.DataFrame()
        if gaps:
            ids = [int(g) for g in gaps]
            filled = pd.DataFrame(
                c.execute(select(*cols).where(cur.in_(ids))).mappings().all(), columns=[col.key for col in cols]
            )
            for found in filled["_cursor"].astype(int).tolist() if len(filled) else []:
                gaps.pop(str(found), None)
        self._expire(table, gaps, now)
        if len(frame):
            seqs = frame["_cursor"].astype(int).to_numpy()
            upto = int(seqs.max())
            pos = self._track(table, gaps, set(range(pos + 1, upto + 1)).difference(seqs.tolist()), now, upto)
        raw = pd.concat([filled, frame], ignore_index=True) if len(filled) else frame
        raw["_ref"] = [f"{table}#{x}" for x in raw["_cursor"]]
        return ReadResult(raw, {"pos": pos, "gaps": gaps}, absent, len(frame) < limit)

    def _read_int_shard(self, c: Connection, t: Table, cols: list[Any], cur: Any, table: str, pos: int,
                        gaps: dict[str, str], limit: int, now: datetime, absent: frozenset[str],
                        where: Any) -> ReadResult:
        """One shard's rows past ``pos``: the next ``limit`` ids of every shard are looked at, only this
        shard's rows come back, with the ids in between that have not committed (yet).

        One statement, so one snapshot: an id is either read (this shard's row), known to be another
        shard's, or a gap; a row committing between two statements could otherwise be counted as
        present and never read.
        """
        names = [col.key for col in cols if col.key != "_cursor"]
        r = select(cur.label("c"), where.label("mine")).where(cur > pos).order_by(cur).limit(limit).cte("r")
        upto = select(func.max(r.c.c)).scalar_subquery()
        payload = [col for col in cols if col.key != "_cursor"]
        mine = select(*payload, cur.label("_cursor"), literal_column("0").label("_kind"),
                      literal_column("0").label("_n")).select_from(t.join(r, cur == r.c.c)).where(r.c.mine)
        g = func.generate_series(pos + 1, upto).column_valued("g")
        missing = (select(*[null().label(k) for k in names], g.label("_cursor"),
                          literal_column("1").label("_kind"), literal_column("0").label("_n"))
                   .where(g.not_in(select(r.c.c))).limit(MAX_TRACKED_GAPS + 1))
        summary = select(*[null().label(k) for k in names], func.max(r.c.c).label("_cursor"),
                         literal_column("2").label("_kind"), func.count().label("_n")).select_from(r)
        ids = [int(g) for g in gaps]
        parts = [mine, missing.subquery().select(), summary]
        if ids:  # gaps that committed since: this shard's rows, and which of them belong to any shard
            parts.append(select(*payload, cur.label("_cursor"), literal_column("3").label("_kind"),
                                where.cast(Integer).label("_n")).where(cur.in_(ids)))
        rows = c.execute(union_all(*parts)).mappings().all()
        allc = [*names, "_cursor", "_kind", "_n"]
        got = pd.DataFrame(rows, columns=allc)
        kinds = got["_kind"].astype(int)
        frame = got[kinds == 0][[*names, "_cursor"]]
        summ = got[kinds == 2]
        count = int(summ["_n"].iloc[0]) if len(summ) else 0
        for found in got.loc[kinds == 3, "_cursor"].astype(int).tolist():
            gaps.pop(str(found), None)
        filled = got[(kinds == 3) & (got["_n"].astype(int) == 1)][[*names, "_cursor"]]
        self._expire(table, gaps, now)
        if count:
            hi = int(summ["_cursor"].iloc[0])
            pos = self._track(table, gaps, set(got.loc[kinds == 1, "_cursor"].astype(int).tolist()), now, hi)
        raw = pd.concat([filled, frame], ignore_index=True) if len(filled) else frame.reset_index(drop=True)
        raw["_ref"] = [f"{table}#{x}" for x in raw["_cursor"]]
        return ReadResult(raw, {"pos": pos, "gaps": gaps}, absent, count < limit)

    def _expire(self, table: str, gaps: dict[str, str], now: datetime) -> None:
        grace = timedelta(seconds=self.settings.gap_grace_seconds)
        for g, first in list(gaps.items()):
            if now - datetime.fromisoformat(first) > grace:
                gaps.pop(g)
                log.info("%s: id %s never appeared within %s; treating it as rolled back", table, g, grace)

    @staticmethod
    def _track(table: str, gaps: dict[str, str], missing: set[int], now: datetime, upto: int) -> int:
        """Remember the ids below ``upto`` that have not committed (yet); the new position is ``upto``."""
        if len(missing) + len(gaps) <= MAX_TRACKED_GAPS:
            for m in missing:
                gaps.setdefault(str(m), now.isoformat())
        elif missing:
            log.warning("%s: %d id gaps not tracked (limit %d)", table, len(missing), MAX_TRACKED_GAPS)
        return upto

    def _read_ts(self, c: Connection, cols: list[Any], cur: Any, table: str,
                 state: Mapping[str, Any], limit: int, now: datetime, absent: frozenset[str],
                 where: Any = None) -> ReadResult:
        upto = now - timedelta(seconds=self.settings.settle_seconds)
        cond = cur <= upto
        if state.get("pos"):
            cond = and_(cond, cur > datetime.fromisoformat(str(state["pos"])))
        if where is not None:
            cond = and_(cond, where)
        rows = c.execute(select(*cols).where(cond).order_by(cur).limit(limit)).mappings().all()
        frame = pd.DataFrame(rows, columns=[col.key for col in cols])
        exhausted = len(frame) < limit
        if not exhausted and frame["_cursor"].nunique() > 1:
            last = frame["_cursor"].max()
            frame = frame[frame["_cursor"] != last]  # never split rows sharing the boundary value
        pos = state.get("pos")
        if len(frame):
            pos = pd.Timestamp(frame["_cursor"].max()).isoformat()
        frame["_ref"] = [f"{table}@{x}" for x in frame["_cursor"]]
        return ReadResult(frame, {"pos": pos}, absent, exhausted)

    def accounts(self, ids: Iterable[str], conn: Connection | None = None) -> pd.DataFrame:
        self._inspect()
        if "accounts" not in self._tables:
            return pd.DataFrame(columns=list(TABLES["accounts"].names))
        t, _tmap, colmap = self._tables["accounts"]
        ids = list(ids)
        cols = [t.c[phys].label(canon) for canon, phys in colmap.items()]
        key = t.c[colmap["account_id"]]
        out: list[Any] = []
        own_conn = conn is None or not self.own
        c = self.engine.connect() if own_conn else conn
        assert c is not None
        try:
            for i in range(0, len(ids), 900):
                chunk = ids[i : i + 900]
                order = [t.c["ingest_seq"]] if "ingest_seq" in t.c else []
                out.extend(c.execute(select(*cols).where(key.in_(chunk)).order_by(*order)).mappings().all())
        finally:
            if own_conn:
                c.close()
        df = pd.DataFrame(out, columns=list(colmap)).drop_duplicates("account_id", keep="last")
        declare_ts(df, self.settings.tables.get("accounts"))
        return df


Source = SqlSource | FileSource
