"""``vigil import DIR``: load a data directory into the engine's canonical source tables.

Each table is read, mapped (``source.tables``) and validated on its own, exactly as a scan reads
a data directory, so one bad file never costs the good ones:

* a file that cannot be used is refused with its reason and the other tables are imported;
* rows that fail validation (a 200-character ``account_id``, a date like ``03/04/2026``, a CSV
  line with an extra field) are written to ``vigil_quarantine`` with their reason and line, not
  to the source tables -- the scan would quarantine them anyway, and the database may refuse them;
* good rows are stored as the text they were given (timestamps in a declared unit or layout are
  stored as ISO 8601, so the engine's source reads them without the mapping);
* a chunk the database still refuses is bisected under savepoints down to the refused rows,
  which are quarantined with the database's message.

:attr:`ImportReport.failed` is true when a file was refused or every row of a table was
quarantined; ``vigil import`` then exits non-zero, after storing everything that was good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete
from sqlalchemy.exc import DBAPIError, StatementError

from alerts.store.models import SOURCE_MODELS, QuarantineRow
from detectors.contract import TABLES
from vigil.files import FileSource
from vigil.ingest import TS_ATTR, Quarantined, check, quarantine_list
from vigil.isolate import database_message, refused_by_database
from vigil.limits import MAX_RAW_CHARS

CHUNK = 20_000


@dataclass
class ImportReport:
    rows: dict[str, int] = field(default_factory=dict)  # rows stored per table
    quarantined: dict[str, list[Quarantined]] = field(default_factory=dict)
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # table -> why its file was refused
    notes: list[str] = field(default_factory=list)

    @property
    def all_quarantined(self) -> list[str]:
        """Tables that had rows, every one of them quarantined."""
        return [t for t, q in self.quarantined.items() if q and not self.rows.get(t)]

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.all_quarantined)


def import_dir(engine: Engine, path: str | Path, tables: Any = None, *, now: datetime | None = None
               ) -> ImportReport:
    """Import every table of the directory that can be read; see the module docstring."""
    now = now or datetime.now(UTC)
    src = FileSource(path, tables)
    report = ImportReport()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # pysqlite begins a transaction only at DML: start it here,
            conn.execute(delete(QuarantineRow).where(QuarantineRow.id < 0))  # or savepoints would commit
        for name, contract in TABLES.items():
            if src.file_for(name) is None:
                continue
            raw = src._load(name)
            if src.file_for(name) is None:  # refused while reading or mapping
                continue
            plan = src.plans.get(name)
            if plan is not None and plan.ignored:
                report.ignored_columns[name] = list(plan.ignored)
            df, reasons = check(name, raw)
            bad = (reasons != "").to_numpy()
            quarantined = quarantine_list(name, df["_ref"], reasons, raw)
            good = raw[~bad]
            cols = [c for c in contract.names if c in good.columns]
            out = good[cols].astype("object")
            for c in cols:
                if TS_ATTR in raw.attrs and contract.column(c).kind == "ts":
                    iso = df.loc[~bad, c].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
                    out[c] = iso.where(iso.notna(), None)
                else:
                    out[c] = out[c].map(_text)
            records: list[dict[str, Any]] = out.to_dict("records")  # type: ignore[assignment]
            refs = good["_ref"].astype(str).tolist()
            table: Table = SOURCE_MODELS[name].__table__  # type: ignore[assignment]
            stored = 0
            for i in range(0, len(records), CHUNK):
                ok, refused = _insert(conn, table, name, records[i : i + CHUNK], refs[i : i + CHUNK])
                stored += ok
                quarantined.extend(refused)
            report.rows[name] = stored
            report.quarantined[name] = quarantined
            for q in quarantined:
                conn.execute(QuarantineRow.__table__.insert(), {  # type: ignore[attr-defined]
                    "source": name, "row_ref": q.ref, "reason": q.reason, "raw": q.raw, "created_at": now})
    report.problems = dict(src.problems)
    report.notes = list(src.notes)
    return report


def _insert(conn: Connection, table: Table, name: str, records: list[dict[str, Any]], refs: list[str]
            ) -> tuple[int, list[Quarantined]]:
    """Insert under a savepoint; a refused chunk is split in halves until the refused rows are alone."""
    if not records:
        return 0, []
    sp = conn.begin_nested()
    try:
        conn.execute(table.insert(), records)
    except (DBAPIError, StatementError) as e:
        sp.rollback()
        if not refused_by_database(e):
            raise
        if len(records) == 1:
            raw = {k: (v[:MAX_RAW_CHARS] if isinstance(v, str) else v) for k, v in records[0].items()}
            return 0, [Quarantined(name, refs[0], f"the database refused the row: {database_message(e)}", raw)]
        mid = len(records) // 2
        a, qa = _insert(conn, table, name, records[:mid], refs[:mid])
        b, qb = _insert(conn, table, name, records[mid:], refs[mid:])
        return a + b, qa + qb
    sp.commit()
    return len(records), []


def _text(v: object) -> str | None:
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
