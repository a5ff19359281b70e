"""Set-based reads and bulk writes: one statement per table per batch instead of one per row.

The scan cycle writes thousands of rows per batch (profiles, findings, alerts, audit events, outbox
rows, quarantined rows).  Through the ORM unit of work that is one ``INSERT`` per object and an
autoflush before every query; here it is one executemany per table (SQLAlchemy's
``insertmanyvalues`` turns it into multi-row ``VALUES`` pages on PostgreSQL), with the values in
Core types, so the TypeDecorators (UTC timestamps, packed JSON) still apply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.orm import Session

SQLITE_CHUNK = 900  # bound parameters per IN list: safe on every SQLite build
PG_CHUNK = 10_000


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def chunk_size(session: Session) -> int:
    return SQLITE_CHUNK if dialect(session) == "sqlite" else PG_CHUNK


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """One executemany ``INSERT`` (every row must have the same keys)."""
    if rows:
        session.execute(table.insert(), list(rows))
    return len(rows)


def update_rows(session: Session, table: Table, key: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """One executemany ``UPDATE ... WHERE key = :key`` setting the other keys of each row."""
    if not rows:
        return 0
    cols = [c for c in rows[0] if c != key]
    stmt = table.update().where(table.c[key] == bindparam("k_" + key, type_=table.c[key].type)).values(
        {c: bindparam("v_" + c, type_=table.c[c].type) for c in cols})
    session.execute(stmt, [{"k_" + key: r[key], **{"v_" + c: r[c] for c in cols}} for r in rows])
    return len(rows)
