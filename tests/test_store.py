"""The Alembic migrations build the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from alerts.store.db import alembic_config, current_revision, make_engine, upgrade
from alerts.store.models import Base

ROOT = Path(__file__).resolve().parents[1]


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def _diff(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return list(compare_metadata(ctx, Base.metadata))


def test_upgrade_reaches_head_and_creates_every_model_table(engine: Any, db_url: str) -> None:
    assert current_revision(engine) == _head(db_url)
    tables = set(inspect(engine).get_table_names())
    missing = set(Base.metadata.tables) - tables
    assert not missing, f"tables the models declare but the migration does not create: {sorted(missing)}"
    assert "alembic_version" in tables


def test_models_agree_with_the_migration(engine: Any) -> None:
    diff = _diff(engine)
    assert diff == [], "models and migration differ (run python -m alerts.store.regen):\n" + "\n".join(
        map(str, diff))


def test_upgrade_twice_then_downgrade_and_back(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # already at head: a no-op, not an error
    from alembic import command

    command.downgrade(alembic_config(db_url), "base")
    eng = make_engine(db_url)
    try:
        assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
        assert current_revision(eng) is None
        upgrade(db_url)
        assert current_revision(eng) == _head(db_url)
        assert _diff(eng) == []
    finally:
        eng.dispose()


def test_each_test_gets_an_empty_database(engine: Any) -> None:
    """The fixture contract other tests rely on: nothing left over from an earlier test."""
    with engine.connect() as conn:
        for name in Base.metadata.tables:
            assert conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one() == 0, name


def test_the_comparison_would_notice_a_drift(engine: Any) -> None:
    """Guards the test above against passing vacuously: a model change must show up as a diff."""
    from sqlalchemy import Column, Integer, MetaData

    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    name = sorted(drifted.tables)[0]
    drifted.tables[name].append_column(Column("drift_probe", Integer))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), drifted)
    assert [d for d in diff if d[0] == "add_column" and d[3].name == "drift_probe"]


# -- the fixture's rules for an unreachable PostgreSQL (run in a child pytest) -------------------
PROBE = '''
import pytest

def test_db(db_url):
    assert db_url

@pytest.mark.postgres
def test_skips_inside(pg_url):
    pytest.skip("a postgres test that skipped")
'''


def _child(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, dict[str, int]]:
    tmp_path.mkdir()
    (tmp_path / "conftest.py").write_text(Path(__file__).with_name("conftest.py").read_text())
    (tmp_path / "test_probe.py").write_text(PROBE)
    report = tmp_path / "pg.json"
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "VIGIL_REQUIRE_PG", "VIGIL_PG_REPORT")}
    full.update(env, VIGIL_PG_REPORT=str(report), PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path)],
        cwd=tmp_path, env=full, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr, json.loads(report.read_text())


def test_unreachable_postgres_skips_on_a_laptop_and_fails_under_ci(tmp_path: Path, free_port: int) -> None:
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port}/test"  # nothing listens there
    code, out, counts = _child(tmp_path / "laptop", {"VIGIL_TEST_PG_URL": closed})
    assert code == 0, out
    assert counts == {"passed": 0, "skipped": 2, "failed": 0}, out
    code, out, counts = _child(tmp_path / "ci", {"VIGIL_TEST_PG_URL": closed, "CI": "true"})
    assert code == 1, out
    assert counts["failed"] == 2 and counts["skipped"] == 0, out
    assert "unreachable" in out and "not a skip" in out


@pytest.mark.postgres
def test_a_skipped_postgres_test_fails_the_run_when_required(tmp_path: Path, pg_url: str) -> None:
    code, out, counts = _child(tmp_path / "req", {"VIGIL_REQUIRE_PG": "1"})
    assert counts == {"passed": 1, "skipped": 1, "failed": 0}, out
    assert code == 1, out
    assert "skipped postgres tests fail this run" in out
