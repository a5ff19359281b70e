"""``vigil import DIR``: load a data directory into the engine's canonical source tables.

Values are stored as text, exactly as given; the scan validates and quarantines them, so a bad
row in a file is never lost at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Table

from alerts.store.models import SOURCE_MODELS
from detectors.contract import TABLES
from vigil.sources import FileSource

CHUNK = 20_000


@dataclass
class ImportReport:
    rows: dict[str, int] = field(default_factory=dict)
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)


def import_dir(engine: Engine, path: str | Path) -> ImportReport:
    src = FileSource(path)
    report = ImportReport()
    with engine.begin() as conn:
        for name, contract in TABLES.items():
            if src.file_for(name) is None:
                continue
            df = src._load(name)
            extra = [c for c in df.columns if c not in contract.names and not c.startswith("_")]
            if extra:
                report.ignored_columns[name] = extra
            cols = [c for c in contract.names if c in df.columns]
            table: Table = SOURCE_MODELS[name].__table__  # type: ignore[assignment]
            out = df[cols].astype("object")
            for c in cols:
                out[c] = out[c].map(_text)
            records: list[dict[str, Any]] = out.to_dict("records")  # type: ignore[assignment]
            for i in range(0, len(records), CHUNK):
                conn.execute(table.insert(), records[i : i + CHUNK])
            report.rows[name] = len(records)
    return report


def _text(v: object) -> str | None:
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
