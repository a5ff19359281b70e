"""What the sources say about one account, for staff views (``vigil accounts show``).

Logins are not copied into the engine's tables: they stay in the source (the engine's own
``logins`` table, an external database mapped in ``source.tables``, or a data directory), so they
are read from there, through the same table and column mapping the scan uses.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import MetaData, Table, inspect, select

from detectors.contract import TABLES
from vigil.errors import ConfigError, SourceError
from vigil.reporting import parse_times
from vigil.settings import TableMap
from vigil.sources import FileSource, SqlSource

LOGIN_COLUMNS = ("ts", "success", "ip", "country", "city", "device_id", "user_agent", "channel")
SCAN_BACK = 200  # rows read (newest by the source's cursor) to find the latest by time


def recent_logins(source: SqlSource | FileSource, account_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The account's latest logins, newest first (by ``ts``); [] when the source has no logins."""
    frame = _file_logins(source, account_id) if isinstance(source, FileSource) else _sql_logins(source, account_id)
    if frame.empty:
        return []
    frame = frame.assign(_ts=parse_times(frame["ts"])).sort_values("_ts", ascending=False, na_position="last")
    out: list[dict[str, Any]] = []
    for row in frame.head(limit).to_dict("records"):
        ts = row.pop("_ts")
        item = {k: (None if _blank(v) else v) for k, v in row.items() if k in LOGIN_COLUMNS}
        item["ts"] = ts.isoformat() if isinstance(ts, pd.Timestamp) and not pd.isna(ts) else item.get("ts")
        out.append(item)
    return out


def _sql_logins(source: SqlSource, account_id: str) -> pd.DataFrame:
    tmap = source.settings.tables.get("logins") or TableMap(table="logins")
    engine = source.engine
    try:
        if tmap.table not in inspect(engine).get_table_names():
            return pd.DataFrame()
        t = Table(tmap.table, MetaData(), autoload_with=engine)
        cols = {canon: tmap.columns.get(canon, canon) for canon in TABLES["logins"].names}
        present = {canon: phys for canon, phys in cols.items() if phys in t.c}
        if "account_id" not in present or "ts" not in present:
            raise ConfigError(f"source table {tmap.table!r} (logins) lacks account_id or ts; "
                              f"map them under source.tables.logins.columns")
        order = t.c[tmap.cursor] if tmap.cursor in t.c else t.c[present["ts"]]
        q = (select(*[t.c[p].label(c) for c, p in present.items() if c in LOGIN_COLUMNS])
             .where(t.c[present["account_id"]] == account_id).order_by(order.desc()).limit(SCAN_BACK))
        with engine.connect() as conn:
            return pd.DataFrame(conn.execute(q).mappings().all())
    except ConfigError:
        raise
    except Exception as e:  # an unreachable source must not look like an account without logins
        raise SourceError(f"cannot read the logins of {account_id!r} from {tmap.table!r}: {e}") from e


def _file_logins(source: FileSource, account_id: str) -> pd.DataFrame:
    path = source.file_for("logins")
    if path is None:
        return pd.DataFrame()
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as e:
        raise SourceError(f"{path}: cannot read: {e}") from None
    if "account_id" not in df.columns or "ts" not in df.columns:
        return pd.DataFrame()
    df = df[df["account_id"].astype(str) == account_id]
    return df[[c for c in LOGIN_COLUMNS if c in df.columns]]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or v == ""
