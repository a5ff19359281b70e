"""Sharded scanners (vigil/shards.py) on real PostgreSQL: the same alerts as one scanner, leases
that move to the survivors, cursors seeded from the unsharded one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from alerts.store.models import AlertRow, Cursor, FindingRow, OutboxRow, Profile
from tests.app.helpers import make_app
from vigil.daemon import scan_leased, scan_until_caught_up
from vigil.importer import import_dir
from vigil.shards import CROSS, Leases, Shard, shard_mask, shard_of

pytestmark = pytest.mark.postgres


def _state(app: Any) -> dict[str, Any]:
    with app.sessions() as s:
        return {
            "alerts": sorted(s.scalars(select(AlertRow.id))),
            "outbox": sorted(s.scalars(select(OutboxRow.id))),
            "findings": sorted(s.scalars(select(FindingRow.id))),
            "profiles": sorted((p.account_id, p.detector, p.version) for p in s.scalars(select(Profile))),
        }


def plant_stuffing(frames: dict[str, Any], ip: str = "203.0.113.77") -> dict[str, Any]:
    """Append a credential-stuffing wave to the logins: 12 accounts fail from one IP within half an
    hour, then two of them log in from it -- work for the cross-account shard."""
    import pandas as pd

    logins = frames["logins"]
    accts = sorted(logins["account_id"].unique())[:12]
    t0 = logins["ts"].max() + pd.Timedelta(minutes=5)
    rows = []
    for i, acct in enumerate([*accts, *accts[:2]]):
        row = logins[logins["account_id"] == acct].iloc[-1].copy()
        row["event_id"] = f"stuff-{i:03d}"
        row["ts"] = t0 + pd.Timedelta(minutes=2 * i)
        row["success"] = i >= len(accts)
        row["ip"] = ip
        rows.append(row)
    return {**frames, "logins": pd.concat([logins, pd.DataFrame(rows)], ignore_index=True)}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from vigil_lab import synth

    path = tmp_path / "data"
    synth.write_dir(plant_stuffing(synth.generate(seed=5, accounts=40, days=12)), path)
    return path


def test_shard_of_is_stable_and_spreads_accounts() -> None:
    assert shard_of("A1", 64) == shard_of("A1", 64) == int("27f237e", 16) % 64  # md5("A1")[:7], pinned
    counts = [0] * 8
    for i in range(4000):
        counts[shard_of(f"acct-{i}", 8)] += 1
    assert min(counts) > 350 and max(counts) < 650
    import pandas as pd

    col = pd.Series(["A1", None, "A2", "A1"])
    masks = [shard_mask(col, 4, k) for k in range(4)]
    assert sum(m.astype(int) for m in masks).tolist() == [1, 1, 1, 1]  # every row in exactly one shard


def test_sharded_scan_gives_the_alerts_of_one_scanner(_postgres: Any, data: Path) -> None:
    names = [_postgres.create(), _postgres.create()]
    try:
        (_, single_url), (_, sharded_url) = names
        single = make_app(single_url, daemon={"batch_rows": 300})
        import_dir(single.engine, data)
        scan_until_caught_up(single, max_batches=1000)
        sharded = make_app(sharded_url, daemon={"batch_rows": 300}, scan={"shards": 5})
        import_dir(sharded.engine, data)
        totals = scan_until_caught_up(sharded, max_batches=1000)  # vigil scan --once: every shard in turn
        assert totals["caught_up"] and totals["shards"] == 6
        a, b = _state(single), _state(sharded)
        assert a["alerts"], "the generated data raises alerts"
        with single.sessions() as s:
            assert s.scalar(select(func.count()).select_from(FindingRow).where(
                FindingRow.detector == "credential_stuffing")), "the cross-account shard has work"
        assert b == a
        with sharded.sessions() as s:
            cursors = set(s.scalars(select(Cursor.source)))
        assert "sql:logins#cross" in cursors and "sql:logins#shard4of5" in cursors
        assert "sql:logins" not in cursors
        single.close()
        sharded.close()
    finally:
        for name, _ in names:
            _postgres.drop(name)


def test_new_shard_cursors_start_at_the_unsharded_cursor(pg_url: str, data: Path) -> None:
    app = make_app(pg_url, daemon={"batch_rows": 300})
    import_dir(app.engine, data)
    scan_until_caught_up(app, max_batches=1000)
    before = _state(app)
    app.close()
    app = make_app(pg_url, daemon={"batch_rows": 300}, scan={"shards": 3})
    totals = scan_until_caught_up(app, max_batches=1000)
    assert totals["rows"] == 0  # switching sharding on reads nothing again
    assert _state(app) == before
    app.close()


def test_leases_are_shared_and_taken_over_after_the_timeout(pg_url: str, data: Path) -> None:
    app = make_app(pg_url, scan={"shards": 6, "lease_seconds": 30})
    a = Leases(app.sessions, 6, 30, "a")
    b = Leases(app.sessions, 6, 30, "b")
    assert [s.index for s in a.heartbeat()] == [CROSS, 0, 1, 2, 3, 4, 5]  # alone: every shard
    assert [s.index for s in b.heartbeat()] == []  # a holds them all until it sees b
    a.heartbeat()  # two live replicas: a hands half back
    assert sorted(a.owned) == [CROSS, 0, 1, 2]
    assert sorted(s.index for s in b.heartbeat()) == [3, 4, 5]
    with app.sessions.begin() as s:  # a dies: its leases run out (the database's clock decides)
        s.execute(text("UPDATE vigil_shard_leases SET expires_at = now() - interval '1 second' WHERE owner = 'a'"))
        s.execute(text("UPDATE vigil_replicas SET heartbeat_at = now() - interval '1 minute' WHERE replica_id = 'a'"))
    assert sorted(s.index for s in b.heartbeat()) == [CROSS, 0, 1, 2, 3, 4, 5]
    with app.sessions.begin() as s:  # resized from 8 shards: leases 6 and 7 are left over, 7 held by a dead one
        s.execute(text("INSERT INTO vigil_shard_leases (shard, owner, expires_at) VALUES (6, NULL, NULL), "
                       "(7, 'old', now() - interval '1 second')"))
    assert sorted(s.index for s in b.heartbeat()) == [CROSS, 0, 1, 2, 3, 4, 5]
    with app.sessions() as s:
        assert s.scalar(text("SELECT max(shard) FROM vigil_shard_leases")) == 5
    b.release()
    with app.sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM vigil_shard_leases WHERE owner IS NOT NULL")) == 0
    assert not b.holds(Shard(0, 6))
    import_dir(app.engine, data)
    c = Leases(app.sessions, 6, 30, "c")
    totals = scan_leased(app, c)
    assert totals["caught_up"] and totals["rows"] > 0 and totals["replica"] == "c"
    _status_and_metrics_show_the_shards(app)
    app.close()


def _status_and_metrics_show_the_shards(app: Any) -> None:
    from vigil.status import render_text, status_report
    from vigil.web.metrics import exposition, registry_for

    with app.sessions.begin() as s:  # b's lease on shard 5 ran out and nobody took it; c is alive
        s.execute(text("UPDATE vigil_shard_leases SET owner = 'b', expires_at = now() - interval '1 second' "
                       "WHERE shard = 5"))
    rep = status_report(app.sessions, app.clock())
    body = rep["shards"]
    assert body["count"] == 6 and body["unowned"] == ["5"]
    c = next(r for r in body["replicas"] if r["replica"] == "c")
    assert c["shards"] == ["cross", "0", "1", "2", "3", "4"] and c["alive"]
    by = {sh["shard"]: sh for sh in body["shards"]}
    assert by["0"]["owner"] == "c" and by["5"]["owner"] is None and by["5"]["last_owner"] == "b"
    assert by["0"]["ids_behind"] == 0 and set(by["cross"]["lag"]) == {"logins"}
    assert by["0"]["lag"]["transactions"]["ids_behind"] == 0
    with app.sessions.begin() as s:  # new rows arrive: every shard falls behind by them
        top = s.scalar(text("SELECT max(ingest_seq) FROM logins"))
        s.execute(text("UPDATE vigil_cursors SET state = CAST(:st AS JSON) WHERE source = 'sql:logins#shard0of6'"),
                  {"st": json.dumps({"pos": top - 7, "gaps": {}})})
    assert status_report(app.sessions, app.clock())["shards"]["shards"][1]["lag"]["logins"]["ids_behind"] == 7
    text_out = render_text(status_report(app.sessions, app.clock()))
    assert "replica c" in text_out and "unowned: 5" in text_out
    metrics = exposition(registry_for(app))[0].decode()
    assert 'vigil_shard_owned{replica="c",shard="0"} 1.0' in metrics
    assert 'vigil_shard_owned{replica="",shard="5"} 0.0' in metrics
    assert 'vigil_shard_lag_ids{shard="0",table="logins"} 7.0' in metrics
    assert 'vigil_replica_shards{replica="c"} 6.0' in metrics
    assert "vigil_outbox_depth" in metrics and "vigil_replica_heartbeat_age_seconds" in metrics


def test_a_sharded_daemon_on_sqlite_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    from vigil.daemon import Daemon
    from vigil.errors import ConfigError

    app = make_app(f"sqlite:///{tmp_path / 'v.db'}", scan={"shards": 4})
    with pytest.raises(ConfigError, match=r"scan.shards: 4 needs a PostgreSQL database_url"):
        Daemon(app)
    app.close()


def test_postgres_computes_the_shard_hash_of_python(pg_url: str) -> None:
    """``shard_clause`` (the hash in the source query) and ``shard_of`` agree on every id, odd ones too."""
    from sqlalchemy import String as Str
    from sqlalchemy import column, create_engine, values

    ids = ["A1", "", "账户-7", "계정", "アカウント", "x" * 300, "0", "  padded ", *(f"acct-{i}" for i in range(200))]
    engine = create_engine(pg_url)
    try:
        from vigil.shards import shard_clause

        rows = values(column("a", Str), name="ids").data([(i,) for i in ids])
        with engine.connect() as c:
            for count in (1, 5, 64):
                got: dict[str, int] = {}
                for k in range(count):
                    for a in c.scalars(select(rows.c.a).where(shard_clause(rows.c.a, count, k))):
                        assert a not in got, f"{a!r} in two shards"
                        got[a] = k
                assert got == {a: shard_of(a, count) for a in ids}
            nulls = [k for k in range(4) if c.scalar(select(shard_clause(text("CAST(NULL AS TEXT)"), 4, k)))]
            assert nulls == [shard_of("", 4)]  # a missing account id counts as '' (as shard_mask does)
    finally:
        engine.dispose()


def _read_all(source: Any, table: str, shard: tuple[int, int] | None, limit: int) -> tuple[list[str], Any]:
    from datetime import UTC, datetime

    state: dict[str, Any] = {}
    out: list[str] = []
    for _ in range(10_000):
        rr = source.read(table, state, limit, datetime.now(UTC), shard=shard)
        assert rr.sharded == (shard is not None)
        out.extend(rr.raw["event_id"].astype(str))
        state = rr.state
        if rr.exhausted:
            return out, state
    raise AssertionError("never exhausted")


def test_a_postgres_source_reads_only_the_shards_rows(pg_url: str, data: Path) -> None:
    """Each shard's reads return its accounts' rows only; together, every row once; the position ends
    at the newest id of any shard, so the shard cursors are caught up as the unsharded one is."""
    from vigil.bootstrap import make_source

    app = make_app(pg_url)
    import_dir(app.engine, data)
    source = make_source(app.settings, app.engine)
    whole, whole_state = _read_all(source, "logins", None, 10_000)
    with app.engine.connect() as c:
        owner = dict(c.execute(text("SELECT event_id, account_id FROM logins")).all())
    seen: list[str] = []
    for k in range(4):
        mine, state = _read_all(source, "logins", (k, 4), 37)
        assert mine and all(shard_of(str(owner[e]), 4) == k for e in mine)
        assert state["pos"] == whole_state["pos"] and not state["gaps"]
        seen.extend(mine)
    assert sorted(seen) == sorted(whole)
    app.close()


def test_a_shard_read_remembers_ids_not_yet_committed_and_reads_them_later(pg_url: str, data: Path) -> None:
    """An id allocated by a transaction still open is a gap for every shard; once it commits, the
    shard of its account reads it and the others close the gap without reading it."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine

    from vigil.bootstrap import make_source

    app = make_app(pg_url)
    import_dir(app.engine, data)
    source = make_source(app.settings, app.engine)
    states = {k: _read_all(source, "logins", (k, 3), 1000)[1] for k in range(3)}
    with app.engine.connect() as c0:
        cols = [c for c in c0.execute(text("SELECT * FROM logins LIMIT 0")).keys() if c != "ingest_seq"]  # noqa: SIM118
    listed = ", ".join(cols)
    copy = ", ".join("event_id || :suffix" if c == "event_id" else c for c in cols)
    late_engine = create_engine(pg_url)
    late = late_engine.connect()
    tx = late.begin()
    late.execute(text(f"INSERT INTO logins ({listed}) SELECT {copy} FROM logins ORDER BY ingest_seq LIMIT 1"),
                 {"suffix": "-late"})  # allocates an id and does not commit yet
    with app.engine.begin() as c:
        c.execute(text(f"INSERT INTO logins ({listed}) SELECT {copy} FROM logins ORDER BY ingest_seq DESC LIMIT 1"),
                  {"suffix": "-next"})
    with app.engine.connect() as c:
        late_id = c.scalar(text("SELECT max(ingest_seq) FROM logins")) - 1
        acct = c.scalar(text("SELECT account_id FROM logins ORDER BY ingest_seq LIMIT 1"))
    got: dict[int, list[str]] = {}
    for k in range(3):
        rr = source.read("logins", states[k], 1000, datetime.now(UTC), shard=(k, 3))
        assert str(late_id) in rr.state["gaps"], "the open transaction's id is remembered"
        got[k] = rr.raw["event_id"].astype(str).tolist()
        states[k] = rr.state
    assert sum(len(v) for v in got.values()) == 1  # the committed newer row, in its account's shard
    tx.commit()
    late.close()
    late_engine.dispose()
    for k in range(3):
        rr = source.read("logins", states[k], 1000, datetime.now(UTC), shard=(k, 3))
        assert str(late_id) not in rr.state["gaps"]
        ids = rr.raw["event_id"].astype(str).tolist()
        if k == shard_of(str(acct), 3):
            assert len(ids) == 1 and ids[0].endswith("-late")
        else:
            assert ids == []
    app.close()
