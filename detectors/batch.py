"""A batch of canonical frames handed to every detector."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from detectors.contract import TABLES


@dataclass
class Batch:
    """Canonical frames by table name, each sorted by ``(ts, event_id)``.

    Timestamps are tz-aware UTC ``datetime64``; every contract column exists (missing optional
    columns are added as all-null only when ``fill_optional`` is used, so that detectors can tell
    "absent" from "present but empty" through ``has_column``).
    """

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    # columns the source does not provide at all, by table
    absent: dict[str, frozenset[str]] = field(default_factory=dict)

    def get(self, table: str) -> pd.DataFrame | None:
        df = self.frames.get(table)
        if df is None or df.empty:
            return None
        return df

    def has_column(self, table: str, column: str) -> bool:
        df = self.frames.get(table)
        if df is None or column not in df.columns:
            return False
        return column not in self.absent.get(table, frozenset())

    def accounts(self) -> set[str]:
        """The accounts with events in the batch (computed once: every detector asks)."""
        key = tuple((name, id(df), len(df)) for name, df in self.frames.items() if name != "accounts")
        cached = self.__dict__.get("_accounts")
        if cached is not None and cached[0] == key:
            return set(cached[1])
        ids: set[str] = set()
        for name, df in self.frames.items():
            if name != "accounts" and df is not None and not df.empty:
                col = df["account_id"]
                if isinstance(col.dtype, pd.StringDtype) and not col.hasnans:  # Arrow: distinct in C
                    ids.update(col.unique().tolist())
                    continue
                values = col.astype(object).to_numpy()
                ids.update(str(a) for a in pd.unique(values) if a is not None and a is not pd.NA)
        self.__dict__["_accounts"] = (key, frozenset(ids))
        return ids

    def __len__(self) -> int:
        return sum(len(df) for name, df in self.frames.items() if name != "accounts")

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> Batch:
        """Build a batch from already-canonical frames (tests, backtests): sorts and types them."""
        out: dict[str, pd.DataFrame] = {}
        absent: dict[str, frozenset[str]] = {}
        for name, df in frames.items():
            table = TABLES[name]
            df = df.copy()
            missing = [c for c in table.names if c not in df.columns]
            absent[name] = frozenset(missing)
            for c in missing:
                df[c] = pd.Series([None] * len(df), index=df.index, dtype="object")
            for col in table.columns:
                if col.kind == "ts":
                    df[col.name] = pd.to_datetime(df[col.name], utc=True, format="mixed")
                elif col.kind == "float":
                    df[col.name] = pd.to_numeric(df[col.name], errors="coerce").astype("float64")
                elif col.kind == "int":
                    df[col.name] = pd.to_numeric(df[col.name], errors="coerce").astype("Int64")
                elif col.kind == "bool":
                    df[col.name] = df[col.name].astype("boolean")
                elif col.name in ("account_id", "event_id"):
                    df[col.name] = df[col.name].astype(str)
            if table.is_event:
                df = df.sort_values(["ts", "event_id"], kind="mergesort").reset_index(drop=True)
            out[name] = df
        return cls(out, absent)

    def filter_accounts(self, accounts: Iterable[str]) -> Batch:
        keep = set(accounts)
        return Batch(
            {n: df[df["account_id"].isin(keep)].reset_index(drop=True) for n, df in self.frames.items()},
            dict(self.absent),
        )
