"""Profile stores: what changed is written (one upsert; COPY on PostgreSQL), what did not is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from alerts.store.db import make_engine, session_factory, upgrade
from alerts.store.models import Profile
from vigil.profiles import COPY_FROM, MemoryProfiles, SqlProfiles

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_sql_profiles_write_new_and_changed_ones_only(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    n = COPY_FROM + 500  # above the COPY threshold on PostgreSQL
    keys = [f"acct-{i:05d}" for i in range(n)]
    with sessions.begin() as s:
        store = SqlProfiles(s)
        assert store.load("new_location", keys) == {}
        assert store.save("new_location", {k: {"n": 1, "seen": ["KR"]} for k in keys}, T0) == n
        store.flush()
    with sessions.begin() as s:
        store = SqlProfiles(s)
        loaded = store.load("new_location", keys)
        assert loaded[keys[7]] == {"n": 1, "seen": ["KR"]} and len(loaded) == n
        states = {k: ({"n": 2, "seen": ["KR", "JP"]} if i % 2 else v) for i, (k, v) in enumerate(loaded.items())}
        assert store.save("new_location", states, T0 + timedelta(hours=1)) == n // 2
        assert store.flush() == n // 2
    with sessions() as s:
        rows = {p.account_id: p for p in s.scalars(select(Profile).where(Profile.detector == "new_location"))}
    assert len(rows) == n
    assert rows[keys[1]].state == {"n": 2, "seen": ["KR", "JP"]} and rows[keys[1]].version == 2
    assert rows[keys[2]].state == {"n": 1, "seen": ["KR"]} and rows[keys[2]].version == 1
    engine.dispose()


def test_memory_profiles_keep_packed_states() -> None:
    store = MemoryProfiles()
    assert store.save("draining", {"A1": {"w": [1, 2]}, "A2": {"w": []}}, T0) == 2
    assert store.save("draining", {"A1": {"w": [1, 2]}, "A2": {"w": [3]}}, T0) == 1  # A1 unchanged
    assert store.load("draining", ["A1", "A2", "A3"]) == {"A1": {"w": [1, 2]}, "A2": {"w": [3]}}
    assert isinstance(store.raw["draining"]["A1"], bytes)


def test_pack_options_are_orjsons_flags() -> None:
    import orjson

    from alerts.store.models import PACK_OPTIONS, pack_json

    assert PACK_OPTIONS == orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
    assert pack_json({"b": 1, 2: [3], "a": None}) == b'{"2":[3],"a":null,"b":1}'
