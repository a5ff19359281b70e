"""Keep scanning when the database refuses a row that validation let through.

Ingest quarantines what the storage limits forbid (:mod:`vigil.limits`), but a database can still
refuse a value -- a trigger, a constraint an operator added, a limit no model states.  Because a
scan writes its whole batch in one transaction, one such row would otherwise fail every scan: no
cursor moves and the daemon retries the same batch forever.

:func:`scan_guarded` runs one batch through :func:`vigil.scan.scan_once` and, when the database
refuses it, *isolates* the refused rows by bisection and commits the rest:

1. the batch the scan read is recorded (:class:`Replay`), so every retry sees exactly those rows;
2. with no rows at all the scan must pass -- otherwise the fault is not in the data and the
   original error is raised (a database that is down is never "bisected");
3. account rows and event rows are bisected separately, each half in its own transaction that is
   rolled back, down to the single rows that fail on their own;
4. the batch without them is committed, the cursors move past them, and they are quarantined
   with the database's own message.

A batch with k refused rows among n costs about 2·k·log2(n) extra scans of shrinking halves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.models import QuarantineRow
from rules.loader import RuleSet
from vigil.ingest import Quarantined, raw_dict
from vigil.limits import ref_limit
from vigil.scan import ScanReport, scan_once

log = logging.getLogger(__name__)
# SQLSTATE classes of a refused value: data exception, integrity violation, program limit exceeded
REFUSED_STATES = ("22", "23", "54")


def refused_by_database(e: BaseException) -> bool:
    """True when the database (or the driver) refused a value; False for outages and our own bugs."""
    if isinstance(e, DBAPIError):
        if e.connection_invalidated:
            return False
        state = getattr(e.orig, "sqlstate", None)
        if isinstance(state, str) and state:
            return state[:2] in REFUSED_STATES
        name = type(e).__name__
        return name in ("DataError", "IntegrityError")
    if isinstance(e, StatementError):  # a bind value the driver cannot send (an int beyond 64 bits)
        return isinstance(e.orig, ValueError | TypeError | OverflowError)
    return False


def database_message(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return f"{type(orig).__name__}: {text}"[:300]


class Replay:
    """A source that returns the rows it read the first time, minus the rows left out (``keep``)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.kind = source.kind
        self.reads: dict[str, Any] = {}
        self.acc: pd.DataFrame | None = None
        self.keep: dict[str, np.ndarray] | None = None  # table -> rows to keep (positions)
        self.keep_accounts: set[str] | None = None
        self._tables: list[str] | None = None

    def tables(self) -> list[str]:
        if self._tables is None:
            self._tables = list(self.source.tables())
        return self._tables

    def read(self, table: str, state: Mapping[str, Any], limit: int, now: datetime, conn: Connection | None = None,
             shard: tuple[int, int] | None = None) -> Any:
        from vigil.sources import ReadResult

        if table not in self.reads:
            self.reads[table] = self.source.read(table, state, limit, now, conn=conn, shard=shard)
        rr = self.reads[table]
        if self.keep is None:
            return rr
        raw = rr.raw.iloc[self.keep.get(table, np.arange(0))].reset_index(drop=True)
        raw.attrs = dict(rr.raw.attrs)
        return ReadResult(raw, rr.state, rr.absent, rr.exhausted, rr.sharded)

    def accounts(self, ids: Iterable[str], conn: Connection | None = None) -> pd.DataFrame:
        wanted = [str(i) for i in ids]
        if self.acc is None:
            self.acc = self.source.accounts(wanted, conn=conn)
        else:
            have = set(self.acc["account_id"].astype(str)) if len(self.acc) else set()
            more = [i for i in wanted if i not in have]
            if more:
                extra = self.source.accounts(more, conn=conn)
                if len(extra):
                    self.acc = pd.concat([self.acc, extra], ignore_index=True)
        acc = self.acc
        if not len(acc):
            return acc
        mask = acc["account_id"].astype(str).isin(wanted)
        if self.keep_accounts is not None:
            mask &= acc["account_id"].astype(str).isin(self.keep_accounts)
        out = acc[mask]
        out.attrs = dict(acc.attrs)
        return out


def scan_guarded(sessions: sessionmaker[Session], source: Any, rules: RuleSet, *, now: datetime,
                 batch_rows: int = 200_000, deliver: bool = True, geo: Any = None, shard: Any = None
                 ) -> ScanReport:
    """One committed batch; rows the database refuses are isolated and quarantined (module docstring)."""
    replay = Replay(source)

    def scan(s: Session) -> ScanReport:
        return scan_once(s, replay, rules, now=now, batch_rows=batch_rows, deliver=deliver, geo=geo,  # type: ignore[arg-type]
                         shard=shard)

    try:
        with sessions.begin() as s:
            return scan(s)
    except (DBAPIError, StatementError) as e:
        if not refused_by_database(e):
            raise
        first = e
    log.warning("scan: the database refused the batch (%s); isolating the refused rows", database_message(first))
    return _isolate(sessions, replay, scan, first, now)


def _isolate(sessions: sessionmaker[Session], replay: Replay, scan: Callable[[Session], ScanReport],
             first: BaseException, now: datetime) -> ScanReport:
    events = [(t, i) for t, rr in replay.reads.items() for i in range(len(rr.raw))]
    accounts = sorted(set(replay.acc["account_id"].astype(str))) if replay.acc is not None and len(replay.acc) else []
    why: dict[Any, str] = {}
    last = [database_message(first)]

    def fails(ev: list[tuple[str, int]], acc: list[str], key: Any = None) -> bool:
        """Does the batch with only these rows fail?  ``key``: the single row under test, to record why."""
        keep: dict[str, list[int]] = {}
        for t, i in ev:
            keep.setdefault(t, []).append(i)
        replay.keep = {t: np.array(v, dtype=int) for t, v in keep.items()}
        replay.keep_accounts = set(acc)
        s = sessions()
        try:
            scan(s)
            s.flush()
            return False
        except (DBAPIError, StatementError) as e:
            if not refused_by_database(e):
                raise
            last[0] = database_message(e)
            if key is not None:
                why[key] = last[0]
            return True
        finally:
            s.rollback()
            s.close()

    def find(units: list[Any], test: Callable[[list[Any]], bool]) -> list[Any]:
        """The rows to leave out so that ``units`` pass, given that they fail together.

        Halving finds rows that fail on their own cheaply; what fails only in company (a finding
        that needs the account's history) is found by :func:`remove_latest`."""
        if len(units) == 1:
            return units
        mid = len(units) // 2
        out: list[Any] = []
        for half in (units[:mid], units[mid:]):
            if test(half):
                out.extend(find(half, test))
        rest = [u for u in units if u not in set(out)]
        if rest and (not out or test(rest)):
            out.extend(remove_latest(rest, test))
        return out

    def remove_latest(units: list[Any], test: Callable[[list[Any]], bool]) -> list[Any]:
        """Leave out, one at a time, the latest row whose removal lets the rest pass."""
        bad: list[Any] = []
        cand = list(units)
        while cand and test(cand):
            message = last[0]
            lo, hi = 1, len(cand)  # the fewest rows dropped from the end that make the rest pass
            while lo < hi:
                k = (lo + hi) // 2
                if test(cand[: len(cand) - k]):
                    lo = k + 1
                else:
                    hi = k
            culprit = cand[len(cand) - lo]
            why.setdefault(culprit, f"refused while this row was in the batch: {message}")
            bad.append(culprit)
            cand.remove(culprit)
        return bad

    if fails([], []):
        raise first  # not the data: an empty batch fails too
    bad_events: list[tuple[str, int]] = []
    bad_accounts: list[str] = []
    if fails(events, []):
        bad_events = find(events, lambda ev: fails(ev, [], ev[0] if len(ev) == 1 else None))
    dropped = set(bad_events)
    good_events = [u for u in events if u not in dropped]
    if accounts and fails(good_events, accounts):
        bad_accounts = find(accounts, lambda acc: fails(good_events, acc, acc[0] if len(acc) == 1 else None))
    replay.keep = {t: np.array([i for tt, i in good_events if tt == t], dtype=int) for t in replay.reads}
    replay.keep_accounts = set(accounts) - set(bad_accounts)
    refused = _quarantined(replay, bad_events, bad_accounts, why)
    with sessions.begin() as s:
        report = scan(s)
        for q in refused:
            s.add(QuarantineRow(source=q.table, row_ref=q.ref, reason=q.reason, raw=q.raw, run_id=report.run_id,
                                created_at=now))
    report.quarantined.extend(refused)
    for q in refused:  # read, then quarantined: counted like rows validation quarantines
        if q.table in report.rows:
            report.rows[q.table] += 1
    log.warning("scan: %d row(s) the database refused were quarantined; the rest of the batch is committed",
                len(refused))
    return report


def _quarantined(replay: Replay, events: list[tuple[str, int]], accounts: list[str], why: dict[Any, str]
                 ) -> list[Quarantined]:
    limit = ref_limit()
    out: list[Quarantined] = []
    for t, i in events:
        row = replay.reads[t].raw.iloc[i]
        ref = str(row.get("_ref", f"{t}:row {i + 1}"))[:limit]
        out.append(Quarantined(t, ref, f"the database refused the row: {why.get((t, i), '')}", raw_dict(row)))
    acc = replay.acc
    for a in accounts:
        assert acc is not None
        rows = acc[acc["account_id"].astype(str) == a]
        row = rows.iloc[-1]
        ref = str(row.get("_ref", f"accounts:{a}"))[:limit]
        out.append(Quarantined("accounts", ref, f"the database refused the row: {why.get(a, '')}", raw_dict(row)))
    return out
