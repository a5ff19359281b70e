"""Every event reaches the detectors once: rewound cursors and repeated imports are replays.

Deterministic ids make a replayed *batch* harmless only while the detectors see it as they saw it
the first time.  After a rewind the profiles already hold the replayed events, so the detectors
would judge them a second time against a history that includes them -- new findings, new alerts,
an event listed twice in a window.  So the scan records, in the batch's own transaction, which
events it fed to the detectors (``vigil_seen_events``, a 128-bit hash of table and event id), and
drops the ones on record from later batches before any detector runs.

The record belongs to the run that read the events: deleting the scan history (``vigil_runs``),
as a start from scratch does, forgets it too (``ON DELETE CASCADE``).  Backtests read every row of
their files once and keep no such record.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import blake2b

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.store.bulk import chunk_size, chunks, insert_rows
from alerts.store.models import SeenEvent

SEEN = SeenEvent.__table__


def event_key(table: str, event_id: str) -> bytes:
    return blake2b(f"{table}\x1f{event_id}".encode(), digest_size=16).digest()


def drop_seen(session: Session, frames: Mapping[str, pd.DataFrame], run_id: int
              ) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The frames without the events fed to the detectors before, and how many were dropped per
    table; the rest are recorded as seen by this run."""
    keyed = {t: [event_key(t, str(e)) for e in df["event_id"]] for t, df in frames.items() if len(df)}
    wanted = sorted({k for ks in keyed.values() for k in ks})
    seen: set[bytes] = set()
    for part in chunks(wanted, chunk_size(session)):
        seen.update(bytes(k) for k in session.scalars(select(SeenEvent.key).where(SeenEvent.key.in_(part))))
    out: dict[str, pd.DataFrame] = dict(frames)
    dropped: dict[str, int] = {}
    fresh: list[dict[str, object]] = []
    for t, keys in keyed.items():
        df = frames[t]
        keep = [k not in seen for k in keys]
        if not all(keep):
            dropped[t] = len(keys) - sum(keep)
            df = df[keep].reset_index(drop=True)
            out[t] = df
        fresh.extend({"key": k, "run_id": run_id} for k, ok in zip(keys, keep, strict=True) if ok)
    insert_rows(session, SEEN, fresh)  # type: ignore[arg-type]
    return out, dropped
