"""The live tick on PostgreSQL: one scan cycle over 10,000 new events with profiles for 1 M accounts.

It builds a fresh database on the server of ``--pg`` (default: the local test server): the schema,
an ``accounts`` source table of ``--accounts`` accounts, and for every account a profile of every
account-keyed detector the default pack runs (states taken from a real scan of generated history,
written with ``COPY``).  Then, ``--cycles`` times, it appends ``--events`` new logins, transactions
and positions of random accounts to the source tables (not timed) and times one ``scan_once`` --
read, validate, seen-events record, detectors with the batch's profiles, rules, alert stage, bulk
writes, cursor advance -- up to and including the commit.

    python bench/tick_bench.py                                  # 1,000,000 accounts, 10,000 events, 20 cycles
    python bench/tick_bench.py --accounts 100000 --cycles 10    # quicker
    python bench/tick_bench.py --pg postgresql://postgres@127.0.0.1:5432/test --keep

Prints p50 / p99 / max of the cycle times and the median seconds per phase.  Target (issue 11):
p50 < 1 s, p99 < 2 s (goal 100 ms).  Run by hand, never as a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synth_big(*args: Any, **kw: Any) -> dict[str, pd.DataFrame]:
    try:
        from vigil_lab import synth  # type: ignore[import-not-found]
    except ImportError:
        from vigil import synth
    return synth.big(*args, **kw)  # type: ignore[no-any-return]


SEED_ACCOUNTS = 2_000


def seed_states(rules: Any, start: datetime) -> tuple[dict[str, dict[str, bytes]], datetime]:
    """Packed profile states per detector and seed account, from a scan of generated history
    (2,000 accounts, 10 days); account ``acct-N`` of the store gets seed account ``N % 2000``'s."""
    from alerts.store.models import pack_json
    from detectors import Batch, Detector

    frames = synth_big(60_000, 30_000, seed=3, n_positions=20_000, n_accounts=SEED_ACCOUNTS, days=10, start=start)
    batch = Batch.from_frames({k: v for k, v in frames.items() if k != "accounts"})
    end = max(df["ts"].max() for n, df in batch.frames.items())
    states: dict[str, dict[str, bytes]] = {}
    for name, det in rules.detectors.items():
        if not rules.for_detector(name) or type(det).profile_keys is not Detector.profile_keys:
            continue
        res = det.scan(batch, {}, now=end.to_pydatetime())
        if res.profiles:
            states[name] = {k: pack_json(s) for k, s in res.profiles.items()}
    return states, end.to_pydatetime()


def seed_of(i: int) -> str:
    return f"acct-{i % SEED_ACCOUNTS + 1:08d}"


def build(url: str, n_accounts: int, states: dict[str, dict[str, bytes]], now: datetime) -> int:
    import psycopg

    from alerts.store.db import upgrade

    upgrade(url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY accounts (account_id, locale, timezone, tier, status) FROM STDIN") as cp:
            for i in range(n_accounts):
                cp.write_row((f"acct-{i:08d}", "en", "UTC", "retail", "active"))
        rows = 0
        with cur.copy("COPY vigil_profiles (account_id, detector, state, version, updated_at) FROM STDIN") as cp:
            for name, by_seed in states.items():
                for i in range(n_accounts):
                    state = by_seed.get(seed_of(i))
                    if state is not None:
                        cp.write_row((f"acct-{i:08d}", name, state, 1, now))
                        rows += 1
        cur.execute("ANALYZE")
        conn.commit()
    return rows


def events(n: int, n_accounts: int, cycle: int, at: datetime, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """``n`` new events within a minute after ``at``: the seed accounts' behaviour going on (same
    homes, devices and amounts), each seed account's events landing on a random store account that
    carries its profile; ids unique per cycle."""
    n_log, n_tx = int(n * 0.45), int(n * 0.25)
    frames = synth_big(n_log, n_tx, seed=3, n_positions=n - n_log - n_tx, n_accounts=SEED_ACCOUNTS, days=1,
                       start=at)
    out = {}
    copies = max(1, n_accounts // SEED_ACCOUNTS)
    for name in ("logins", "transactions", "positions"):
        df = frames[name].copy()
        seed = df["account_id"].str.slice(5).astype(int).to_numpy() - 1
        target = seed + SEED_ACCOUNTS * rng.integers(0, copies, len(df))
        df["account_id"] = [f"acct-{a:08d}" for a in np.minimum(target, n_accounts - 1)]
        df["event_id"] = [f"c{cycle}-{name[0]}{i}" for i in range(len(df))]
        offset = rng.integers(0, 55_000, len(df))  # milliseconds into the minute
        df["ts"] = pd.Timestamp(at) + pd.to_timedelta(np.sort(offset), unit="ms")
        out[name] = df
    return out


def append(engine: Any, frames: dict[str, pd.DataFrame]) -> None:
    from alerts.store.models import SOURCE_MODELS
    from detectors.contract import TABLES

    with engine.begin() as conn:
        for name, df in frames.items():
            cols = [c for c in TABLES[name].names if c in df.columns]
            text = df[cols].astype("object").where(df[cols].notna(), None)
            for c in cols:
                if c == "ts":
                    text[c] = df[c].map(lambda t: t.isoformat())
                elif c in ("success", "is_anonymous_ip"):
                    text[c] = df[c].map(lambda v: None if v is None or v is pd.NA else str(bool(v)).lower())
                else:
                    text[c] = text[c].map(lambda v: None if v is None else str(v))
            conn.execute(SOURCE_MODELS[name].__table__.insert(), text.to_dict("records"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    ap.add_argument("--profile", default=None, metavar="FILE", help="cProfile (CPU time) of the last cycle")
    args = ap.parse_args()

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from alerts.store.db import normalise_url
    from vigil.bootstrap import bootstrap
    from vigil.scan import scan_once
    from vigil.settings import load_settings

    base = make_url(normalise_url(args.pg))  # postgresql:// means psycopg 3, as everywhere in Vigil
    name = f"vigil_tick_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        app = bootstrap(load_settings(None, database_url=url), migrate=False)
        t0 = time.perf_counter()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        states, end = seed_states(app.rules, start)
        rows = build(url, args.accounts, states, end)
        print(f"store: {args.accounts:,} accounts, {rows:,} profiles of {len(states)} detectors "
              f"({', '.join(states)}) built in {time.perf_counter() - t0:.0f}s")
        rng = np.random.default_rng(1)
        at = end + timedelta(minutes=1)
        seconds: list[float] = []
        phases: dict[str, list[float]] = {}
        for cycle in range(args.cycles):
            append(app.engine, events(args.events, args.accounts, cycle, at, rng))
            now = at + timedelta(seconds=60)
            prof = None
            if args.profile and cycle == args.cycles - 1:
                import cProfile

                prof = cProfile.Profile(time.process_time)
                prof.enable()
            t = time.perf_counter()
            with app.sessions.begin() as s:
                rep = scan_once(s, app.source, app.rules, now=now, batch_rows=args.events * 2, geo=app.geo)
            seconds.append(time.perf_counter() - t)
            if prof is not None:
                prof.disable()
                prof.dump_stats(args.profile)
            for k, v in rep.timings.items():
                phases.setdefault(k, []).append(v)
            print(f"cycle {cycle + 1}: {rep.total_rows:,} rows, {rep.findings} findings, "
                  f"{len(rep.stage.created)} alerts, {seconds[-1]:.3f}s")
            at += timedelta(minutes=1)
        s_sorted = sorted(seconds)
        p99 = s_sorted[min(len(s_sorted) - 1, round(0.99 * (len(s_sorted) - 1)))]
        print(f"\ncycle seconds over {len(seconds)} cycles: p50 {statistics.median(seconds):.3f}  p99 {p99:.3f}  "
              f"max {max(seconds):.3f}   (target p50 < 1, p99 < 2)")
        order = sorted(phases.items(), key=lambda kv: -statistics.median(kv[1]))
        print("median seconds per phase: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in order))
        app.close()
    finally:
        if not args.keep:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            print(f"kept database {name}")
        admin.dispose()


if __name__ == "__main__":
    main()
