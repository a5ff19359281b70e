"""Shared provider buckets (``delivery.ratelimit``) and the SMS budget across workers.

The buckets run on the real stores (PostgreSQL, Redis) with the pass's time handed in, so the
arithmetic is checked exactly; the three-process run against a loopback provider is in
``test_ratelimit_replicas.py``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.store.db import make_engine, session_factory
from alerts.store.models import Base
from delivery.deliver import Deliverer
from delivery.policy import Budget, PolicySettings, RateLimit, RateLimiter
from delivery.ratelimit import Allowance, DatabaseLimiter, Limiter, RedisLimiter, limiter_for
from notifiers.base import DeliveryResult, Message
from tests.conftest import pick_free_port, require_pg
from tests.delivery.kit import T0, account, alert, channels, outbox, render
from vigil.bootstrap import App

REDIS_URL = os.environ.get("VIGIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SMS = {"sms": RateLimit(per_second=2, burst=3)}


def redis_or_skip() -> str:
    """The test Redis (``VIGIL_TEST_REDIS_URL``); absent: skipped here, a failure under CI or
    ``VIGIL_REQUIRE_PG=1`` (``scripts/test`` starts Redis beside PostgreSQL)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as e:
        if require_pg():
            pytest.fail(f"Redis at {REDIS_URL} does not answer ({e}); CI or VIGIL_REQUIRE_PG=1 is set",
                        pytrace=False)
        pytest.skip(f"Redis at {REDIS_URL} does not answer: {e}")
    return REDIS_URL


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Any]:
    engine = make_engine(pg_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["database", "redis"])
def two_workers(request: pytest.FixtureRequest, pg_url: str) -> Iterator[tuple[Limiter, Limiter]]:
    """Two workers' limiters on one shared store, each with its own connection."""
    if request.param == "database":
        engines = [make_engine(pg_url) for _ in range(2)]
        Base.metadata.create_all(engines[0])
        yield DatabaseLimiter(engines[0], SMS), DatabaseLimiter(engines[1], SMS)
        for e in engines:
            e.dispose()
    else:
        url = redis_or_skip()
        prefix = f"vigil-test:{uuid.uuid4().hex}:"
        a, b = RedisLimiter(url, SMS, prefix=prefix), RedisLimiter(url, SMS, prefix=prefix)
        yield a, b
        for key in a.client.scan_iter(f"{prefix}*"):
            a.client.delete(key)
        a.client.close()
        b.client.close()


def test_two_workers_take_from_one_bucket(two_workers: tuple[Limiter, Limiter]) -> None:
    a, b = two_workers
    assert a.take("sms", 2, T0) == (2, 0.0)
    got, wait = b.take("sms", 5, T0)  # one token left of the burst of 3, for both
    assert got == 1 and wait == pytest.approx(0.5)
    assert a.take("sms", 1, T0) == (0, pytest.approx(0.5))
    assert b.acquire("sms", T0 + timedelta(seconds=0.5)) == 0.0  # 2 a second: one more after 0.5 s
    assert a.take("sms", 10, T0 + timedelta(seconds=10)) == (3, pytest.approx(0.5))  # refilled to the burst only


def test_tokens_given_back_are_taken_by_the_other_worker(two_workers: tuple[Limiter, Limiter]) -> None:
    a, b = two_workers
    assert a.take("sms", 3, T0)[0] == 3
    a.refund("sms", 2, T0)
    assert b.take("sms", 3, T0)[0] == 2


def test_a_429_seen_by_one_worker_stops_the_other(two_workers: tuple[Limiter, Limiter]) -> None:
    a, b = two_workers
    assert b.blocked_until("sms") is None
    assert a.backoff("sms", T0, 20) == 20
    got, wait = b.take("sms", 1, T0 + timedelta(seconds=5))
    assert got == 0 and wait == pytest.approx(15)
    assert b.blocked_until("sms") == T0 + timedelta(seconds=20)  # remembered: the senders check it locally
    assert b.take("push", 4, T0 + timedelta(seconds=5)) == (4, 0.0)  # another provider goes on
    assert b.take("sms", 1, T0 + timedelta(seconds=21))[0] == 1


def test_a_clock_behind_takes_no_refill(two_workers: tuple[Limiter, Limiter]) -> None:
    """Worker b's clock runs 10 s behind a's: it gets nothing the bucket has not refilled by a's time."""
    a, b = two_workers
    assert a.take("sms", 3, T0 + timedelta(seconds=10))[0] == 3
    assert b.take("sms", 3, T0)[0] == 0
    assert b.take("sms", 3, T0 + timedelta(seconds=10.5))[0] == 1


def test_the_memory_limiter_takes_in_batches_the_same_way() -> None:
    lim = RateLimiter(SMS)
    assert lim.take("sms", 5, T0) == (3, pytest.approx(0.5))
    lim.refund("sms", 1, T0)
    assert lim.take("sms", 5, T0) == (1, pytest.approx(0.5))
    assert lim.take("push", 7, T0) == (7, 0.0)


class Counting(RateLimiter):
    def __init__(self) -> None:
        super().__init__(SMS)
        self.calls: list[tuple[str, int]] = []

    def take(self, provider: str, n: int, now: Any) -> tuple[int, float]:
        self.calls.append((provider, n))
        return super().take(provider, n, now)


def test_a_claim_takes_its_tokens_in_one_round_trip_and_gives_back_the_rest() -> None:
    lim = Counting()
    allowance = Allowance(lim, Counter({"sms": 2}), T0, batch=10)
    assert allowance.acquire("sms") == 0.0 and allowance.acquire("sms") == 0.0
    assert allowance.acquire("sms") == 0.0  # not foreseen: one more round trip, the burst's third token
    assert allowance.acquire("sms") == pytest.approx(0.5)  # the bucket is dry: the next token ...
    assert allowance.acquire("sms") == pytest.approx(1.0)  # ... the one after: no round trip
    assert lim.calls == [("sms", 2), ("sms", 1), ("sms", 1)]
    allowance.close()
    held = Allowance(lim, Counter({"sms": 3}), T0 + timedelta(seconds=10), batch=10)
    assert held.acquire("sms") == 0.0  # took 3, used 1 (the other two messages were held)
    held.close()
    assert lim.take("sms", 3, T0 + timedelta(seconds=10))[0] == 2  # the two came back


def test_the_store_follows_the_settings(tmp_path: Any, pg_engine: Any) -> None:
    sqlite = session_factory(make_engine(f"sqlite:///{tmp_path / 'v.db'}"))
    pg = session_factory(pg_engine)
    assert isinstance(limiter_for(PolicySettings(), sqlite), RateLimiter)
    assert isinstance(limiter_for(PolicySettings(), pg), DatabaseLimiter)
    assert isinstance(limiter_for(PolicySettings(rate_store="memory"), pg), RateLimiter)
    url = PolicySettings(redis_url="redis://127.0.0.1:1/0")  # never connected until the first take
    assert isinstance(limiter_for(url, sqlite), RedisLimiter)
    with pytest.raises(ValueError, match=r"rate_store 'database' needs PostgreSQL; the database is sqlite"):
        limiter_for(PolicySettings(rate_store="database"), sqlite)
    with pytest.raises(ValidationError, match=r"policy\.rate_store is 'redis' but policy\.redis_url is not set"):
        PolicySettings(rate_store="redis")


def test_the_settings_file_names_a_bad_store(tmp_path: Any) -> None:
    from vigil.errors import ConfigError
    from vigil.settings import load_settings

    bad = tmp_path / "vigil.yaml"
    bad.write_text("policy:\n  rate_store: redsi\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(bad)
    assert "vigil.yaml:2:15: policy.rate_store: 'redsi' is not one of" in str(err.value)
    assert "Did you mean 'redis'?" in str(err.value)


def test_a_store_that_cannot_work_is_refused_when_the_settings_load(tmp_path: Any) -> None:
    from vigil.errors import ConfigError
    from vigil.settings import load_settings

    path = tmp_path / "vigil.yaml"
    path.write_text("database_url: sqlite:///x.db\npolicy:\n  rate_store: database\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"policy\.rate_store: 'database' keeps the rate buckets in PostgreSQL"):
        load_settings(path)
    path.write_text("policy:\n  redis_url: http://redis.internal:6379\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"vigil\.yaml:2:14: policy\.redis_url: a Redis URL starts with redis://"):
        load_settings(path)
    s = load_settings(path, policy={"redis_url": "redis://:hunter2@redis.internal:6379/0"})
    assert "hunter2" not in repr(s.policy) and "hunter2" not in s.model_dump_json()  # a secret
    assert load_settings(None, database_url="postgresql://u@db/vigil", policy={"rate_store": "database"})


def test_without_redis_a_worker_falls_back_to_its_own_bucket(caplog: pytest.LogCaptureFixture) -> None:
    lim = RedisLimiter(f"redis://127.0.0.1:{pick_free_port()}/0", SMS, timeout=0.5)
    with caplog.at_level(logging.ERROR, logger="vigil.deliver"):
        assert lim.take("sms", 5, T0) == (3, pytest.approx(0.5))  # the in-process bucket, same rate
        assert lim.take("sms", 1, T0)[0] == 0
        lim.backoff("sms", T0, 30)
    assert lim.blocked_until("sms") == T0 + timedelta(seconds=30)
    assert sum("Redis rate limiter unreachable" in r.getMessage() for r in caplog.records) == 1  # once a minute


# -- through the delivery job ----------------------------------------------------------------------
def _sms_alerts(app: App, n: int, account_id: str | None = None) -> None:
    with app.sessions.begin() as s:
        for i in range(n):
            acct = account_id or f"P{i}"
            account(s, acct, phone=f"+8210666{i:05d}")
            alert(s, i, account_id=acct, channels=("sms",))


def test_two_deliverers_on_postgresql_share_the_providers_rate(pg_url: str, clock: Any, rule_set: Any) -> None:
    from tests.delivery.conftest import make_test_app

    app = make_test_app(pg_url, clock, rule_set)
    _sms_alerts(app, 10)
    policy = PolicySettings(budgets={}, receipt_channels=[], rates={"sms": RateLimit(per_second=1, burst=3)})
    engines = [make_engine(pg_url) for _ in range(2)]
    chans = channels()
    workers = [Deliverer(session_factory(e), app.settings, chans, render, worker=f"w{i}", policy=policy,
                         rng=random.Random(1)) for i, e in enumerate(engines)]
    assert all(isinstance(w.limiter, DatabaseLimiter) for w in workers)
    first = workers[0].run_once(T0, limit=2)
    second = workers[1].run_once(T0, limit=6)
    assert (first.sent, second.sent, second.throttled) == (2, 1, 5)  # a burst of 3 between them, not 3 each
    assert len(chans["sms"].sent) == 3
    later = workers[1].run_once(T0 + timedelta(seconds=2), limit=10)
    assert (later.claimed, later.sent, later.throttled) == (4, 2, 2)  # two seconds at 1 a second; the waits
    # were spread at the rate (1 s, 2 s, ... 5 s): two of the five are due, with the two never claimed
    later = workers[0].run_once(T0 + timedelta(seconds=100), limit=10)
    assert later.sent == 3  # a quiet spell refills the bucket up to its burst only
    for w in workers:
        w.close()
    for e in engines:
        e.dispose()
    app.close()


def _gate() -> tuple[threading.Event, threading.Event, Any]:
    started, go = threading.Event(), threading.Event()

    def script(m: Message) -> DeliveryResult:
        started.set()
        go.wait(30)  # a guard against a hang
        return DeliveryResult("sent", provider_id=f"SM-{m.outbox_id}")

    return started, go, script


def test_the_sms_budget_holds_across_workers(app: App) -> None:
    """Worker A has prepared 4 SMS to one account and is still sending them when worker B claims
    4 more: B counts A's as on their way and sends 1, the budget's fifth; the others wait."""
    _sms_alerts(app, 8, account_id="B1")
    policy = PolicySettings(budgets={"sms": Budget(max=5, per_seconds=3600)}, receipt_channels=[])
    engines = [make_engine(app.settings.database_url) for _ in range(2)]
    started, go, script = _gate()
    slow, fast = channels(sms=script), channels()
    a = Deliverer(session_factory(engines[0]), app.settings, slow, render, worker="a", policy=policy,
                  concurrency={"sms": 1})
    b = Deliverer(session_factory(engines[1]), app.settings, fast, render, worker="b", policy=policy)
    reports: dict[str, Any] = {}
    ta = threading.Thread(target=lambda: reports.setdefault("a", a.run_once(T0, limit=4)))
    ta.start()
    try:
        assert started.wait(30)  # A is in its first provider call; its other three are queued
        reports["b"] = b.run_once(T0, limit=10)
    finally:
        go.set()
        ta.join()
    assert reports["a"].sent == 4
    assert (reports["b"].sent, reports["b"].held) == (1, 3)
    assert len(slow["sms"].sent) + len(fast["sms"].sent) == 5
    with app.sessions() as s:
        assert sorted(r.status for r in outbox(s, account_id="B1")) == ["held"] * 3 + ["sent"] * 5
    for d in (a, b):
        d.close()
    for e in engines:
        e.dispose()


def test_a_worker_waiting_on_the_account_lock_sees_what_the_first_decided(pg_url: str, clock: Any,
                                                                          rule_set: Any) -> None:
    """PostgreSQL: two workers prepare claims for one account at the same moment; whoever checks
    the budget second sees the first's messages, so exactly the budget goes out."""
    from tests.delivery.conftest import make_test_app

    app = make_test_app(pg_url, clock, rule_set)
    _sms_alerts(app, 10, account_id="B2")
    policy = PolicySettings(budgets={"sms": Budget(max=5, per_seconds=3600)}, receipt_channels=[])
    engines = [make_engine(pg_url) for _ in range(3)]
    chans = channels()
    workers = [Deliverer(session_factory(e), app.settings, chans, render, worker=f"w{i}", policy=policy)
               for i, e in enumerate(engines)]
    barrier = threading.Barrier(len(workers))
    reports: list[Any] = []

    def run(d: Deliverer) -> None:
        barrier.wait(30)
        reports.append(d.run_once(T0, limit=3))

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.claimed for r in reports) == 9
    assert len(chans["sms"].sent) <= 5 and sum(r.sent for r in reports) == len(chans["sms"].sent)
    assert sum(r.sent for r in reports) >= 3  # the last to check sees what the others sent: it fills up
    for w in workers:
        w.close()
    for e in engines:
        e.dispose()
    app.close()


def test_a_429_told_to_one_replica_holds_back_the_other(pg_url: str, clock: Any, rule_set: Any) -> None:
    """Worker A's provider answers 429 (Retry-After 120 s); worker B, another process's limiter on
    the same database, sends nothing to that provider until then, and then sends."""
    from tests.delivery.conftest import make_test_app

    app = make_test_app(pg_url, clock, rule_set)
    _sms_alerts(app, 4)
    policy = PolicySettings(budgets={}, receipt_channels=[])  # no configured rate: only the 429 stops it
    engines = [make_engine(pg_url) for _ in range(2)]
    told = channels(sms=lambda m: DeliveryResult("transient", error_code="20429", error="too many requests",
                                                 action="backoff", retry_after=120))
    fine = channels()
    a = Deliverer(session_factory(engines[0]), app.settings, told, render, worker="a", policy=policy,
                  concurrency={"sms": 1})
    b = Deliverer(session_factory(engines[1]), app.settings, fine, render, worker="b", policy=policy)
    assert a.run_once(T0, limit=1).retried == 1
    rep = b.run_once(T0 + timedelta(seconds=1), limit=10)
    assert (rep.claimed, rep.sent, rep.throttled) == (3, 0, 3) and fine["sms"].sent == []
    with app.sessions() as s:
        assert all(r.next_attempt_at >= T0 + timedelta(seconds=120) for r in outbox(s, channel="sms"))
    rep = b.run_once(T0 + timedelta(hours=1), limit=10)
    assert rep.sent == 4 and len(fine["sms"].sent) == 4
    for d in (a, b):
        d.close()
    for e in engines:
        e.dispose()
    app.close()
