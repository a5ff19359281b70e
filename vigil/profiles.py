"""Where the detectors' profiles live between batches: the database (the daemon) or memory (backtests).

Both stores keep a profile as packed JSON bytes (``alerts.store.models.pack_json``): compact, fast to
load, and comparable byte for byte, so a profile a batch did not change is never written again.

* :class:`SqlProfiles` reads the batch's keys only, several detectors per query, and writes new and
  changed profiles with one upsert statement per batch.
* :class:`MemoryProfiles` keeps every profile of a backtest in a dict (bytes, not Python objects:
  about a tenth of the memory), so a backtest writes nothing but its results.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, select
from sqlalchemy.orm import Session

from alerts.store.bulk import chunk_size, chunks, dialect
from alerts.store.models import PACK_OPTIONS, UTCDateTime, pack_json, unpack_json

State = dict[str, Any]


class ProfileStore(Protocol):
    def load(self, detector: str, keys: Collection[str]) -> dict[str, State]:
        """The stored profiles of these keys (absent keys are absent)."""

    def save(self, detector: str, states: Mapping[str, Mapping[str, Any]], now: datetime) -> int:
        """Store new and changed profiles (by :meth:`flush` at the latest); return how many."""

    def flush(self) -> int:
        """Write what :meth:`save` kept back; return how many profiles were written."""


class _Packed:
    """The bytes each loaded profile had, to tell a changed profile from an unchanged one."""

    def __init__(self) -> None:
        self.raw: dict[str, dict[str, bytes]] = {}

    def changed(self, detector: str, states: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[bytes, bool]]:
        """key -> (packed state, stored before) for the states whose bytes differ from the stored ones."""
        before = self.raw.get(detector, {})
        out: dict[str, tuple[bytes, bool]] = {}
        for key, state in states.items():
            packed = pack_json(state)
            old = before.get(key)
            if old != packed:
                out[key] = (packed, old is not None)
        return out


class MemoryProfiles(_Packed):
    """Profiles of a backtest, in memory, as packed bytes."""

    def load(self, detector: str, keys: Collection[str]) -> dict[str, State]:
        mine = self.raw.get(detector)
        if not mine:
            return {}
        loads, get = orjson.loads, mine.get  # unpack_json without a call per profile
        out = {}
        for k in keys:
            raw = get(k)
            if raw is not None:
                out[k] = loads(raw)
        return out

    def save(self, detector: str, states: Mapping[str, Mapping[str, Any]], now: datetime) -> int:
        mine = self.raw.setdefault(detector, {})
        dumps, get, option = orjson.dumps, mine.get, PACK_OPTIONS  # pack_json, inlined
        n = 0
        for key, state in states.items():
            packed = dumps(state, option=option)
            if get(key) != packed:
                mine[key] = packed
                n += 1
        return n

    def flush(self) -> int:
        return 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.raw.values())


class SqlProfiles(_Packed):
    """Profiles in ``vigil_profiles``, inside the scan's transaction."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.fetched: dict[str, set[str]] = {}  # detector -> keys asked for already
        self.pending: list[dict[str, Any]] = []

    def prefetch(self, detectors: Collection[str], keys: Collection[str]) -> None:
        """Read several detectors' profiles of the same keys: one query per chunk of keys."""
        wanted = sorted(keys)
        dets = sorted(detectors)
        for d in dets:
            self.raw.setdefault(d, {})
            self.fetched.setdefault(d, set()).update(wanted)
        if not wanted or not dets:
            return
        if dialect(self.session) == "postgresql":
            self._prefetch_pg(dets, wanted)
            return
        c = RAW.c
        for part in chunks(wanted, chunk_size(self.session)):
            stmt = select(c.detector, c.account_id, c.state).where(
                c.account_id.in_(part), c.detector.in_(dets) if len(dets) > 1 else c.detector == dets[0])
            for det, key, raw in self.session.execute(stmt):
                self.raw[det][key] = bytes(raw)

    def _prefetch_pg(self, dets: list[str], wanted: list[str]) -> None:
        """PostgreSQL: one array parameter instead of thousands, and bytea in binary (no hex text)."""
        dbapi = self.session.connection().connection.driver_connection
        with dbapi.cursor(binary=True) as cur:  # type: ignore[union-attr]
            for part in chunks(wanted, 50_000):
                cur.execute("SELECT detector, account_id, state FROM vigil_profiles "
                            "WHERE account_id = ANY(%s) AND detector = ANY(%s)", (list(part), dets))
                for det, key, raw in cur:
                    self.raw[det][key] = bytes(raw)

    def load(self, detector: str, keys: Collection[str]) -> dict[str, State]:
        fetched = self.fetched.get(detector, set())
        missing = [k for k in keys if k not in fetched]
        if missing:
            self.prefetch([detector], missing)
        mine = self.raw.get(detector, {})
        return {k: unpack_json(mine[k]) for k in keys if k in mine}

    def save(self, detector: str, states: Mapping[str, Mapping[str, Any]], now: datetime) -> int:
        fetched = self.fetched.get(detector, set())
        unknown = [k for k in states if k not in fetched]
        if unknown:  # a detector returned keys it did not declare: never insert twice
            self.prefetch([detector], unknown)
        changed = self.changed(detector, states)
        if not changed:
            return 0
        rows = [{"account_id": k, "detector": detector, "state": packed, "version": 1, "updated_at": now}
                for k, (packed, _old) in changed.items()]
        self.pending.extend(rows)  # written by flush(), every detector's together
        mine = self.raw.setdefault(detector, {})
        for k, (packed, _old) in changed.items():
            mine[k] = packed
        return len(rows)

    def flush(self) -> int:
        """Write the new and changed profiles: one upsert statement; on PostgreSQL, above
        :data:`COPY_FROM` rows, ``COPY`` into a temporary table and one ``INSERT ... SELECT``."""
        rows, self.pending = self.pending, []
        if not rows:
            return 0
        if dialect(self.session) == "postgresql" and len(rows) >= COPY_FROM:
            _copy_upsert(self.session, rows)
        else:
            self.session.execute(_upsert(dialect(self.session)), rows)
        return len(rows)


# ``vigil_profiles`` with the state as the bytes it is stored as (the store packs and compares them itself)
RAW = Table("vigil_profiles", MetaData(), Column("account_id", String(128), primary_key=True),
            Column("detector", String(64), primary_key=True), Column("state", LargeBinary),
            Column("version", Integer), Column("updated_at", UTCDateTime()))


COPY_FROM = 2_000  # rows: below this, the executemany upsert is as fast as COPY

_COPY_UPSERT = (
    "INSERT INTO vigil_profiles (account_id, detector, state, version, updated_at) "
    "SELECT account_id, detector, state, 1, updated_at FROM vigil_profiles_in "
    "ON CONFLICT (account_id, detector) DO UPDATE SET state = EXCLUDED.state, "
    "version = vigil_profiles.version + 1, updated_at = EXCLUDED.updated_at"
)


def _copy_upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY the rows into a per-connection temporary table, then upsert them at once."""
    dbapi = session.connection().connection.driver_connection
    with dbapi.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS vigil_profiles_in (account_id varchar(128), "
                    "detector varchar(64), state bytea, updated_at timestamptz) ON COMMIT DELETE ROWS")
        with cur.copy("COPY vigil_profiles_in (account_id, detector, state, updated_at) FROM STDIN") as cp:
            for r in rows:
                cp.write_row((r["account_id"], r["detector"], r["state"], r["updated_at"]))
        cur.execute(_COPY_UPSERT)
        cur.execute("DELETE FROM vigil_profiles_in")


def _upsert(dialect_name: str) -> Any:
    """INSERT new profiles; for existing ones replace the state and bump the version: one statement."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(RAW)
    return stmt.on_conflict_do_update(
        index_elements=[RAW.c.account_id, RAW.c.detector],
        set_={"state": stmt.excluded.state, "version": RAW.c.version + 1, "updated_at": stmt.excluded.updated_at},
    )
