"""Fixtures of the fault-injection suite (``pytest -m faults``; part of the normal run).

Every test here is marked ``faults``.  The providers misbehave on demand (``providers``); the
database that is stopped or frozen is a private throw-away cluster (``cluster``), never the shared
server other test runs use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import PrivateCluster, pg_bin
from tests.faults.providers import FakeApis, FaultRelay, service_account


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def relay() -> Iterator[FaultRelay]:
    r = FaultRelay().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def apis() -> Iterator[FakeApis]:
    a = FakeApis()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def key_file(tmp_path: Path, apis: FakeApis) -> Path:
    return service_account(tmp_path, f"{apis.url}/token")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster on a free port, in a temporary directory, removed afterwards."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; VIGIL_PG_BIN)")
    c = PrivateCluster(bindir)
    try:
        yield c
    finally:
        c.destroy()
