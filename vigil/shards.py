"""Sharded live scanners: accounts split by a stable hash, shards leased by replicas (PostgreSQL).

With ``scan.shards: N`` (N > 0) every account belongs to shard ``md5(account_id)[:7] % N``, a
hash that never changes between processes, versions or machines.  Each shard has its own cursor
per source table (``sql:logins#shard3of64``) and is scanned by the replica that holds its lease
in ``vigil_shard_leases``; one more lease, shard ``-1``, elects the replica that runs the
cross-account detectors (credential stuffing) over every account's rows with its own cursors.

Leases (:class:`Leases`): each replica heartbeats every third of ``scan.lease_seconds``; in one
transaction it records itself in ``vigil_replicas``, renews its own leases, hands back the ones
above its fair share (``ceil(N / live replicas)``) and claims free or expired ones with
``SELECT ... FOR UPDATE SKIP LOCKED``.  The database's clock decides expiry, never the replicas'.
A replica that dies keeps its shards until ``lease_seconds`` after its last heartbeat; then the
survivors take them over and continue from the shard's cursor.

A lease is an assignment, not the guard of correctness: every shard batch runs under the shard's
transaction-scoped advisory lock and the cursor row is read ``FOR UPDATE``, so two replicas that
both believe they hold a shard (a paused process whose lease expired) scan it one after the other
from the committed cursor, never the same rows twice.

A SQL source on PostgreSQL computes the hash in the query (:func:`shard_clause`), so a replica reads
only its accounts' rows; other sources (files, other databases) are read whole past the shard's
cursor and the scan keeps the shard's rows (:func:`shard_mask`) — the same rows either way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.models import Cursor

log = logging.getLogger(__name__)
CROSS = -1  # the shard whose lease elects the replica running the cross-account detectors
SHARD_LOCK_CLASS = 0x5648  # pg_advisory_xact_lock(class, shard): one batch per shard at a time


def shard_of(account_id: str, count: int) -> int:
    """The account's shard: stable across processes and versions (not Python's ``hash``)."""
    return int(hashlib.md5(account_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:7], 16) % count


def shard_mask(accounts: pd.Series, count: int, shard: int) -> np.ndarray:
    """True for the rows whose account falls in ``shard`` (a missing account id counts as '')."""
    memo: dict[str, int] = {}
    out = np.empty(len(accounts), dtype=bool)
    for i, a in enumerate(accounts.tolist()):
        key = "" if a is None or (isinstance(a, float) and math.isnan(a)) else str(a)
        s = memo.get(key)
        if s is None:
            s = memo[key] = shard_of(key, count)
        out[i] = s == shard
    return out


def shard_clause(account_id: Any, count: int, index: int) -> Any:
    """SQL (PostgreSQL) that is true for the rows whose ``account_id`` column falls in shard ``index``:
    the first 7 hex digits of the MD5 of the id's text, as :func:`shard_of` computes them."""
    from sqlalchemy import Integer, Text, cast, func, literal
    from sqlalchemy.dialects.postgresql import BIT

    digits = func.substr(func.md5(func.coalesce(cast(account_id, Text), "")), 1, 7)
    value = cast(cast(literal("x", Text).concat(digits), BIT(28)), Integer)
    return (value % count) == index


@dataclass(frozen=True)
class Shard:
    """One shard of ``count``, or the cross-account shard (``index == CROSS``)."""

    index: int
    count: int

    @property
    def cross(self) -> bool:
        return self.index == CROSS

    @property
    def suffix(self) -> str:
        return "#cross" if self.cross else f"#shard{self.index}of{self.count}"

    def label(self) -> str:
        return "cross" if self.cross else str(self.index)


def all_shards(count: int) -> list[Shard]:
    return [Shard(CROSS, count), *(Shard(i, count) for i in range(count))]


def seed_state(session: Session, base: str, count: int) -> dict[str, Any]:
    """A new shard cursor starts where the slowest cursor of the same table stood: the unsharded
    one (switching sharding on) or the shards of another count (resizing), with every id gap they
    still watch.  Rows read again are dropped by the seen-events ledger before the detectors
    (``vigil/ledger.py``).  Shards of the same count never seed each other."""
    own = f"of{count}"
    states = [c.state or {} for c in session.query(Cursor).filter(
        (Cursor.source == base) | Cursor.source.like(base + "#shard%")) if not c.source.endswith(own)]
    states = [s for s in states if s.get("pos") is not None]
    if not states:
        return {}
    out = dict(min(states, key=lambda s: _order(s["pos"])))
    gaps: dict[str, Any] = {}
    for s in states:
        gaps.update(s.get("gaps") or {})
    if "gaps" in out or gaps:
        out["gaps"] = {g: t for g, t in gaps.items() if _order(int(g)) <= _order(out["pos"])}
    return out


def _order(pos: Any) -> tuple[int, Any]:
    return (0, int(pos)) if isinstance(pos, int) or str(pos).lstrip("-").isdigit() else (1, str(pos))


def lock_shard(session: Session, shard: Shard) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(:c, :s)"), {"c": SHARD_LOCK_CLASS, "s": shard.index})


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_EXPIRY = "now() + make_interval(secs => CAST(:lease AS double precision))"
_ENSURE = ("INSERT INTO vigil_shard_leases (shard) SELECT g FROM generate_series(-1, :n - 1) g "
           "ON CONFLICT (shard) DO NOTHING")
_SHRINK = "DELETE FROM vigil_shard_leases WHERE shard >= :n AND (owner IS NULL OR expires_at < now())"
_BEAT = ("INSERT INTO vigil_replicas (replica_id, started_at, heartbeat_at, shards) VALUES (:me, now(), now(), '[]') "
         "ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = now()")
_LIVE = ("SELECT count(*) FROM vigil_replicas "
         "WHERE heartbeat_at > now() - make_interval(secs => CAST(:lease AS double precision))")
_RENEW = f"UPDATE vigil_shard_leases SET heartbeat_at = now(), expires_at = {_EXPIRY} WHERE owner = :me RETURNING shard"
_RELEASE = "UPDATE vigil_shard_leases SET owner = NULL, expires_at = now() WHERE owner = :me"
_CLAIM = ("UPDATE vigil_shard_leases SET owner = :me, acquired_at = now(), heartbeat_at = now(), "
          f"expires_at = {_EXPIRY} "
          "WHERE shard IN (SELECT shard FROM vigil_shard_leases WHERE {which} "
          "AND (owner IS NULL OR expires_at < now()) ORDER BY shard {limit} FOR UPDATE SKIP LOCKED) RETURNING shard")


class Leases:
    """This replica's leases; :meth:`heartbeat` renews, rebalances and claims (module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], count: int, lease_seconds: float,
                 replica_id: str | None = None) -> None:
        self.sessions = sessions
        self.count = count
        self.lease_seconds = float(lease_seconds)
        self.replica_id = replica_id or default_replica_id()
        self.owned: set[int] = set()

    def holds(self, shard: Shard) -> bool:
        return shard.index in self.owned

    def shards(self) -> list[Shard]:
        return [Shard(i, self.count) for i in sorted(self.owned)]

    def heartbeat(self) -> list[Shard]:
        p = {"me": self.replica_id, "lease": self.lease_seconds}
        with self.sessions.begin() as s:
            s.execute(text(_ENSURE), {"n": self.count})
            s.execute(text(_SHRINK), {"n": self.count})  # shards of a larger count, after resizing
            s.execute(text(_BEAT), p)
            live = int(s.scalar(text(_LIVE), p) or 1)
            mine = list(s.scalars(text(_RENEW), p))
            fair = math.ceil(self.count / max(1, live))
            regular = sorted(x for x in mine if x != CROSS)
            stale = [x for x in regular if x >= self.count]  # taken under a larger count: not ours to scan
            if stale:
                s.execute(text(_RELEASE + " AND shard = ANY(:extra)"), {**p, "extra": stale})
                regular = [x for x in regular if x < self.count]
            extra = regular[fair:]
            if extra:  # more than the fair share: hand the highest back to the newcomers
                s.execute(text(_RELEASE + " AND shard = ANY(:extra)"), {**p, "extra": extra})
                regular = regular[:fair]
            want = fair - len(regular)
            if want > 0:
                regular += list(s.scalars(text(_CLAIM.format(which="shard >= 0 AND shard < :n", limit="LIMIT :want")),
                                          {**p, "want": want, "n": self.count}))
            cross = CROSS in mine or bool(list(s.scalars(text(_CLAIM.format(which="shard = -1", limit="")), p)))
            owned = set(regular) | ({CROSS} if cross else set())
            s.execute(text("UPDATE vigil_replicas SET shards = CAST(:shards AS JSON) WHERE replica_id = :me"),
                      {**p, "shards": "[" + ", ".join(str(x) for x in sorted(owned)) + "]"})
        gained, lost = owned - self.owned, self.owned - owned
        if gained or lost:
            log.info("replica %s: shards %s (gained %s, lost %s; %d live replica(s))", self.replica_id,
                     _ranges(owned), _ranges(gained), _ranges(lost), live,
                     extra={"event": "shards_changed", "shards": sorted(owned)})
        self.owned = owned
        return [Shard(i, self.count) for i in sorted(owned)]

    def release(self) -> None:
        """On a clean stop: give every lease back at once, so the others need not wait the timeout."""
        with self.sessions.begin() as s:
            s.execute(text(_RELEASE), {"me": self.replica_id})
            s.execute(text("DELETE FROM vigil_replicas WHERE replica_id = :me"), {"me": self.replica_id})
        self.owned = set()


def _ranges(shards: Iterable[int]) -> str:
    xs = sorted(shards)
    return "[" + ", ".join("cross" if x == CROSS else str(x) for x in xs) + "]"


def lease_rows(session: Session) -> list[dict[str, Any]]:
    """Every lease with its owner and timings, and the database's own now (for ages)."""
    return [dict(r) for r in session.execute(text(
        "SELECT shard, owner, acquired_at, heartbeat_at, expires_at, expires_at < now() AS expired, now() AS db_now "
        "FROM vigil_shard_leases ORDER BY shard")).mappings()]


def replica_rows(session: Session) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(text(
        "SELECT replica_id, started_at, heartbeat_at, shards, now() AS db_now FROM vigil_replicas "
        "ORDER BY replica_id")).mappings()]
