"""A data directory as a source: ``NAME.csv`` or ``NAME.parquet`` per contract table.

One bad file never costs the good ones: every table is read on its own, and a file that cannot be
used (not UTF-8, not Parquet, missing required columns, a table present as both CSV and Parquet)
is *refused* -- its table is absent, the reason is in :attr:`FileSource.problems` -- while every
other table is read.  An empty file is an absent table with a note.  Rows the reader could not
split travel on with an ``_error`` and are quarantined by ingest with their line numbers.

The mapping (``source.tables``, :mod:`vigil.mapping`) names each table's file and columns; files
that are no contract table are reported with what they might be.  The cursor is the number of
rows consumed, so rows appended to a file are read next time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Connection

from detectors.contract import EVENT_TABLES, TABLES
from vigil.datafile import FileRefused, read_data_file
from vigil.errors import SourceError
from vigil.ingest import declare_ts
from vigil.mapping import MappingError, Plan, apply, plan, suggest_file
from vigil.readresult import ReadResult

if TYPE_CHECKING:
    from vigil.settings import TableMap

SUFFIXES = (".csv", ".parquet")


class FileSource:
    """Canonical tables read from a data directory, mapped by ``source.tables``."""

    kind = "files"

    def __init__(self, path: str | Path, tables: Mapping[str, TableMap] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: data directory not found")
        self.maps: dict[str, TableMap] = dict(tables or {})
        self.problems: dict[str, str] = {}  # table -> why its file was refused
        self.notes: list[str] = []  # what was read differently from what one might expect
        self.plans: dict[str, Plan] = {}
        self._cache: dict[str, pd.DataFrame] = {}
        self._files: dict[str, Path] = {}
        self._messages: list[tuple[int, str]] = []
        self._resolve()

    def _resolve(self) -> None:
        files = sorted(f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        used: set[Path] = set()
        for name in TABLES:
            tmap = self.maps.get(name)
            stem = (tmap.table if tmap is not None and tmap.table else name)
            found = [f for f in files if f.name == stem] or [f for f in files if f.stem == stem]
            used.update(found)
            if len(found) > 1:
                self._refuse(name, f"{' and '.join(f.name for f in found)}: the table {name!r} is present twice; "
                                   f"keep one of the files")
            elif found:
                self._files[name] = found[0]
            elif tmap is not None and tmap.table:
                self._refuse(name, f"source.tables.{name}.table: no {stem}.csv or {stem}.parquet in {self.path}")
        for f in files:
            if f in used:
                continue
            if f.stem in TABLES:  # its table is mapped to another file
                self._note(f"{f.name}: ignored, source.tables.{f.stem}.table names another file", warn=True)
            else:
                hint = suggest_file(f.stem)
                self._note(f"{f.name}: not a contract table, ignored" + (f"; {hint}" if hint else
                           f" (the tables are {', '.join(n + '.csv' for n in TABLES)})"), warn=True)

    def _refuse(self, table: str, why: str) -> None:
        self.problems[table] = why
        self._messages.append((logging.ERROR, why))

    def _note(self, what: str, warn: bool = False) -> None:
        self.notes.append(what)
        self._messages.append((logging.WARNING if warn else logging.INFO, what))

    def drain_messages(self) -> list[tuple[int, str]]:
        """Refusals and notes not reported yet, with a log level (the daemon logs them once)."""
        out, self._messages = self._messages, []
        return out

    def mapped(self, table: str) -> bool:
        """Whether ``source.tables`` maps this table (its file uses the export's own names)."""
        return table in self.maps

    def file_for(self, table: str) -> Path | None:
        return self._files.get(table)

    def _load(self, table: str) -> pd.DataFrame:
        """The table's canonical frame (empty and column-less when absent or refused)."""
        if table in self._cache:
            return self._cache[table]
        df = pd.DataFrame()
        p = self._files.get(table)
        if p is not None:
            try:
                df = self._read(table, p)
            except (FileRefused, MappingError) as e:
                self._refuse(table, str(e))
                self._files.pop(table, None)
                df = pd.DataFrame()
        df["_cursor"] = range(1, len(df) + 1)
        self._cache[table] = df
        return df

    def _read(self, table: str, p: Path) -> pd.DataFrame:
        tmap = self.maps.get(table)
        where = f"source.tables.{table}"
        loaded = read_data_file(p, encoding=tmap.encoding if tmap else None, setting=f"{where}.encoding")
        if loaded is None:
            self._note(f"{p.name}: empty file, read as an absent {table} table")
            self._files.pop(table, None)
            return pd.DataFrame()
        headers = [c for c in loaded.columns if not str(c).startswith("_")]
        self.plans[table] = pl = plan(table, headers, tmap.columns if tmap else {}, filename=p.name, where=where,
                                      mapped_table=tmap.table if tmap else None)
        df = apply(pl, loaded)
        declare_ts(df, tmap)
        if table == "accounts" and "_error" in df.columns:  # scans read accounts by id: say it here
            errors = df["_error"].dropna()
            if len(errors):
                self._note(f"{p.name}: {len(errors)} line(s) could not be read and are skipped: "
                           + "; ".join(errors.astype(str).head(3)), warn=True)
        return df

    def tables(self) -> list[str]:
        for n in EVENT_TABLES:
            self._load(n)
        return [n for n in EVENT_TABLES if n in self._files]

    def read(
        self, table: str, state: Mapping[str, Any], limit: int, now: datetime, conn: Connection | None = None,
        shard: tuple[int, int] | None = None,
    ) -> ReadResult:
        """``shard`` is not applied here (the scan keeps the shard's rows after the read)."""
        df = self._load(table)
        pos = int(state.get("pos", 0))
        chunk = df.iloc[pos : pos + limit].reset_index(drop=True)
        chunk.attrs = dict(df.attrs)
        absent = frozenset(c for c in TABLES[table].optional if c not in df.columns)
        return ReadResult(chunk, {"pos": pos + len(chunk)}, absent, pos + limit >= len(df))

    def accounts(self, ids: Iterable[str], conn: Connection | None = None) -> pd.DataFrame:
        df = self._load("accounts")
        if df.empty or "account_id" not in df.columns:
            return pd.DataFrame(columns=list(TABLES["accounts"].names))
        wanted = set(ids)
        out = df[df["account_id"].astype(str).isin(wanted)].drop_duplicates("account_id", keep="last")
        out.attrs = dict(df.attrs)
        return out
