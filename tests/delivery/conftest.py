"""Fixtures for the delivery tests: a fresh database (SQLite and PostgreSQL) with app wiring.

The schema comes from the models (``create_all``), which ``tests/test_store.py`` proves equal to
the Alembic migration; that keeps each test's setup well under a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.helpers import Clock
from tests.delivery.kit import T0
from vigil.bootstrap import App


@pytest.fixture(scope="session")
def rule_set() -> Any:
    from vigil.bootstrap import load_rule_set

    return load_rule_set(None)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def make_test_app(db_url: str, clock: Clock, rules: Any, **overrides: Any) -> App:
    from alerts.store.db import make_engine
    from alerts.store.models import Base
    from vigil.bootstrap import bootstrap
    from vigil.settings import load_settings

    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    overrides.setdefault("web", {"base_url": "https://alerts.exchange.example", "secret_key": "k" * 32})
    settings = load_settings(None, database_url=db_url, **overrides)
    return bootstrap(settings, clock=clock, migrate=False, rules=rules)


@pytest.fixture
def app(db_url: str, clock: Clock, rule_set: Any) -> Iterator[App]:
    """The real application on a fresh database with a fixed clock."""
    a = make_test_app(db_url, clock, rule_set)
    try:
        yield a
    finally:
        a.close()


@pytest.fixture
def deliverer_factory(app: App) -> Any:
    import random

    from delivery.deliver import Deliverer
    from tests.delivery.kit import render

    def make(chans: Any, **kw: Any) -> Deliverer:
        kw.setdefault("rng", random.Random(7))
        return Deliverer(app.sessions, app.settings, chans, render, **kw)

    return make
