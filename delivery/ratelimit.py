"""Provider rate limits that hold across replicas: one token bucket per provider, shared.

:class:`delivery.policy.RateLimiter` keeps its buckets in the memory of one process.  With
several delivery workers (daemon replicas, ``vigil deliver --once`` beside a daemon) each would
spend the provider's whole rate; the buckets here live where every worker takes from the same one:

* :class:`DatabaseLimiter` -- PostgreSQL, one row per provider in ``vigil_rate_buckets``.  One
  ``UPDATE ... RETURNING`` refills the bucket for the time elapsed and takes what it can, atomically
  (the row is locked for that one statement, in autocommit: one round trip);
* :class:`RedisLimiter` -- Redis, one hash per provider, the same arithmetic in a Lua script.

Both take tokens in batches: a claim asks once per provider for as many as its messages need (at
most ``policy.rate_batch``) and gives back what it did not use (:class:`Allowance`).  A provider's
"too many requests" (a 429) blocks the shared bucket, so every worker stops calling it; each
worker also remembers the block locally, so its senders check it without a round trip.

Times are the workers' clocks (the ``now`` of the pass), as in the in-process bucket: a worker
whose clock runs behind another's takes nothing from the refill until it catches up, so skewed
clocks make the shared rate stricter, never looser.

Should Redis be unreachable, a worker falls back to its in-process bucket (and logs it) rather than
stop sending alerts: the provider may then see up to N times the rate until Redis answers again.
The database limiter has no such fallback: without the database no message is claimed at all.

:func:`limiter_for` picks the store from ``policy.rate_store``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from delivery.policy import PolicySettings, RateLimit, RateLimiter

log = logging.getLogger("vigil.deliver")
REDIS_TTL = 86_400  # seconds an idle bucket's key lives in Redis
FALLBACK_LOG_EVERY = 60.0  # seconds between warnings while Redis is away


class Limiter(Protocol):
    """What the delivery code asks of a rate limiter (in-process or shared)."""

    def acquire(self, provider: str, now: datetime) -> float: ...

    def take(self, provider: str, n: int, now: datetime) -> tuple[int, float]: ...

    def refund(self, provider: str, n: int, now: datetime) -> None: ...

    def backoff(self, provider: str, now: datetime, retry_after: float | None) -> float: ...

    def blocked_until(self, provider: str) -> datetime | None: ...

    def per_second(self, provider: str) -> float | None: ...


class SharedLimiter:
    """The parts both shared stores have in common: the settings, the local copy of each
    provider's block, and the single-token ``acquire``."""

    store = "?"

    def __init__(self, rates: Mapping[str, RateLimit] | None = None, *, default_backoff: float = 30.0) -> None:
        self._rates = dict(rates or {})
        self._default_backoff = default_backoff
        self._blocked: dict[str, datetime | None] = {}
        self._lock = threading.Lock()

    def _rate(self, provider: str) -> tuple[float | None, float]:
        r = self._rates.get(provider)
        return (r.per_second, r.burst) if r else (None, 1.0)

    def per_second(self, provider: str) -> float | None:
        return self._rate(provider)[0]

    def _saw_block(self, provider: str, until: datetime | None) -> None:
        with self._lock:
            self._blocked[provider] = until

    def acquire(self, provider: str, now: datetime) -> float:
        got, wait = self.take(provider, 1, now)
        return 0.0 if got else wait

    def take(self, provider: str, n: int, now: datetime) -> tuple[int, float]:
        raise NotImplementedError

    def refund(self, provider: str, n: int, now: datetime) -> None:
        raise NotImplementedError

    def backoff(self, provider: str, now: datetime, retry_after: float | None) -> float:
        """The provider said "too many requests": every worker stops calling it for ``retry_after``."""
        wait = retry_after if retry_after and retry_after > 0 else self._default_backoff
        until = self._block(provider, now, now + timedelta(seconds=wait))
        self._saw_block(provider, until)
        return wait

    def _block(self, provider: str, now: datetime, until: datetime) -> datetime:
        raise NotImplementedError

    def blocked_until(self, provider: str) -> datetime | None:
        """The block as this worker last saw it (refreshed by every ``take``): no round trip."""
        with self._lock:
            return self._blocked.get(provider)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store})"


# -- PostgreSQL ------------------------------------------------------------------------------------
_ENSURE = text("INSERT INTO vigil_rate_buckets (key, tokens, updated_at, blocked_until) "
               "VALUES (:key, :burst, :now, NULL) ON CONFLICT (key) DO NOTHING")
# refill for the time elapsed (never negative: clocks of two workers may differ), take up to :n,
# unless the provider is backing us off; the row is locked for this one statement
_TAKE = text("""
WITH cur AS (
    SELECT key, blocked_until,
           CAST(:n AS integer) AS n,
           least(CAST(:burst AS float8), tokens + CAST(:rate AS float8) * greatest(0.0,
                 CAST(extract(epoch FROM (CAST(:now AS timestamptz) - updated_at)) AS float8))) AS avail,
           coalesce(blocked_until > CAST(:now AS timestamptz), false) AS blocked
    FROM vigil_rate_buckets WHERE key = :key FOR UPDATE
), took AS (
    SELECT key, avail, blocked, blocked_until,
           CASE WHEN blocked THEN 0 ELSE least(n, CAST(floor(avail + 1e-9) AS integer)) END AS granted
    FROM cur
)
UPDATE vigil_rate_buckets AS b
SET tokens = CASE WHEN took.blocked THEN b.tokens ELSE greatest(0.0, took.avail - took.granted) END,
    updated_at = CASE WHEN took.blocked THEN b.updated_at ELSE greatest(b.updated_at, CAST(:now AS timestamptz)) END
FROM took WHERE b.key = took.key
RETURNING took.granted, b.tokens, b.blocked_until
""")
_PEEK = text("SELECT blocked_until FROM vigil_rate_buckets WHERE key = :key")
_REFUND = text("UPDATE vigil_rate_buckets SET tokens = least(CAST(:burst AS float8), tokens + :n) WHERE key = :key")
_BLOCK = text("""
UPDATE vigil_rate_buckets
SET blocked_until = greatest(coalesce(blocked_until, CAST(:until AS timestamptz)), CAST(:until AS timestamptz)),
    tokens = 0.0, updated_at = greatest(updated_at, CAST(:now AS timestamptz))
WHERE key = :key RETURNING blocked_until
""")


class DatabaseLimiter(SharedLimiter):
    """Token buckets in PostgreSQL (``vigil_rate_buckets``), one row per provider."""

    store = "database"

    def __init__(self, engine: Engine, rates: Mapping[str, RateLimit] | None = None, *,
                 default_backoff: float = 30.0) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"policy.rate_store 'database' needs PostgreSQL; the database is {engine.dialect.name} "
                             "(use 'memory' for one process)")
        super().__init__(rates, default_backoff=default_backoff)
        self.engine = engine
        self._ensured: set[str] = set()

    def _run(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            res = c.execute(stmt, params)
            return list(res) if res.returns_rows else []

    def _ensure(self, key: str, now: datetime) -> None:
        if key not in self._ensured:
            _, burst = self._rate(key)
            self._run(_ENSURE, {"key": key, "burst": burst, "now": now})
            self._ensured.add(key)

    def take(self, provider: str, n: int, now: datetime) -> tuple[int, float]:
        rate, burst = self._rate(provider)
        self._ensure(provider, now)
        if rate is None:  # no configured rate: only a 429 stops it
            rows = self._run(_PEEK, {"key": provider})
            until = _aware(rows[0][0]) if rows else None
            self._saw_block(provider, until)
            if until is not None and until > now:
                return 0, (until - now).total_seconds()
            return n, 0.0
        rows = self._run(_TAKE, {"key": provider, "n": n, "rate": rate, "burst": burst, "now": now})
        if not rows:  # the row was deleted meanwhile: make it again
            self._ensured.discard(provider)
            self._ensure(provider, now)
            rows = self._run(_TAKE, {"key": provider, "n": n, "rate": rate, "burst": burst, "now": now})
        granted, tokens, blocked = rows[0]
        until = _aware(blocked)
        self._saw_block(provider, until)
        if until is not None and until > now:
            return 0, (until - now).total_seconds()
        return int(granted), 0.0 if granted >= n else (1.0 - float(tokens)) / rate

    def refund(self, provider: str, n: int, now: datetime) -> None:
        rate, burst = self._rate(provider)
        if rate is not None and n > 0:
            self._run(_REFUND, {"key": provider, "n": n, "burst": burst})

    def _block(self, provider: str, now: datetime, until: datetime) -> datetime:
        self._ensure(provider, now)
        rows = self._run(_BLOCK, {"key": provider, "now": now, "until": until})
        return _aware(rows[0][0]) or until if rows else until


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


# -- Redis -----------------------------------------------------------------------------------------
# KEYS[1]: the bucket.  ARGV: n, now (epoch seconds), rate (-1: none), burst, ttl.
# Returns {granted, tokens, blocked_until} as strings (Lua numbers would come back truncated).
_LUA_TAKE = """
local h = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'blocked')
local n, now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens = tonumber(h[1]) or burst
local updated = tonumber(h[2]) or now
local blocked = tonumber(h[3]) or 0
if blocked > now then return {'0', tostring(tokens), tostring(blocked)} end
if rate < 0 then return {tostring(n), tostring(tokens), tostring(blocked)} end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local granted = math.min(n, math.floor(tokens + 1e-9))
tokens = math.max(0, tokens - granted)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(math.max(updated, now)))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {tostring(granted), tostring(tokens), tostring(blocked)}
"""
# ARGV: n, burst
_LUA_REFUND = """
local t = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if t then redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[2]), t + tonumber(ARGV[1])))) end
return 1
"""
# ARGV: now, until, ttl
_LUA_BLOCK = """
local h = redis.call('HMGET', KEYS[1], 'updated', 'blocked')
local now, untl = tonumber(ARGV[1]), tonumber(ARGV[2])
local blocked = math.max(tonumber(h[2]) or 0, untl)
redis.call('HSET', KEYS[1], 'tokens', '0', 'updated', tostring(math.max(tonumber(h[1]) or now, now)),
           'blocked', tostring(blocked))
redis.call('EXPIRE', KEYS[1], math.max(tonumber(ARGV[3]), math.ceil(blocked - now)))
return tostring(blocked)
"""


class RedisLimiter(SharedLimiter):
    """Token buckets in Redis, one hash per provider (``<redis_prefix><provider>``)."""

    store = "redis"

    def __init__(self, url: str, rates: Mapping[str, RateLimit] | None = None, *, prefix: str = "vigil:rate:",
                 default_backoff: float = 30.0, timeout: float = 2.0) -> None:
        try:
            import redis
        except ImportError as e:  # pragma: no cover - the extra is part of the test and deploy sets
            raise ValueError("policy.redis_url is set but the redis package is missing: "
                             "pip install 'vigil-alerts[redis]'") from e
        super().__init__(rates, default_backoff=default_backoff)
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._take = self.client.register_script(_LUA_TAKE)
        self._refund = self.client.register_script(_LUA_REFUND)
        self._blockscript = self.client.register_script(_LUA_BLOCK)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.fallback = RateLimiter(rates, default_backoff=default_backoff)
        self._warned = float("-inf")

    def _away(self, e: BaseException) -> None:
        if time.monotonic() - self._warned >= FALLBACK_LOG_EVERY:
            self._warned = time.monotonic()
            log.error("Redis rate limiter unreachable (%s: %s); this worker uses its in-process bucket until "
                      "Redis answers", type(e).__name__, e)

    def take(self, provider: str, n: int, now: datetime) -> tuple[int, float]:
        rate, burst = self._rate(provider)
        try:
            got, tokens, blocked = self._take(keys=[self.prefix + provider],
                                              args=[n, now.timestamp(), -1 if rate is None else rate, burst, REDIS_TTL])
        except self._errors as e:
            self._away(e)
            return self.fallback.take(provider, n, now)
        b = float(blocked)
        until = datetime.fromtimestamp(b, UTC) if b > 0 else None
        self._saw_block(provider, until)
        if until is not None and until > now:
            return 0, (until - now).total_seconds()
        granted = int(got)
        if granted >= n or rate is None:
            return granted, 0.0
        return granted, (1.0 - float(tokens)) / rate

    def refund(self, provider: str, n: int, now: datetime) -> None:
        rate, burst = self._rate(provider)
        if rate is None or n <= 0:
            return
        try:
            self._refund(keys=[self.prefix + provider], args=[n, burst])
        except self._errors as e:
            self._away(e)
            self.fallback.refund(provider, n, now)

    def _block(self, provider: str, now: datetime, until: datetime) -> datetime:
        try:
            b = float(self._blockscript(keys=[self.prefix + provider],
                                        args=[now.timestamp(), until.timestamp(), REDIS_TTL]))
        except self._errors as e:
            self._away(e)
            self.fallback.backoff(provider, now, (until - now).total_seconds())
            return until
        return datetime.fromtimestamp(b, UTC)

    def blocked_until(self, provider: str) -> datetime | None:
        mine = super().blocked_until(provider)
        theirs = self.fallback.blocked_until(provider)  # a 429 seen while Redis was away
        return max((t for t in (mine, theirs) if t is not None), default=None)


# -- one claim's tokens ----------------------------------------------------------------------------
class Allowance:
    """The tokens of one claim: taken per provider in batches (one round trip for up to ``batch``
    messages), handed out one per message, the unused ones given back by :meth:`close`."""

    def __init__(self, limiter: Limiter, need: Counter[str], now: datetime, batch: int) -> None:
        self.limiter = limiter
        self.need = need  # messages of the claim per provider not yet admitted
        self.now = now
        self.batch = batch
        self.left: Counter[str] = Counter()
        self.dry: dict[str, float] = {}  # provider -> wait: the bucket is empty for this pass
        self.behind: Counter[str] = Counter()  # messages told to wait, per provider

    def acquire(self, provider: str) -> float:
        """0.0: one message may go to ``provider`` now; else the seconds to wait.  The waits are
        spread at the provider's rate (the 1st message waits for the next token, the 2nd for the
        one after, ...), so that the messages come back one by one rather than all at once."""
        want = max(1, self.need[provider])
        self.need[provider] = want - 1
        if self.left[provider] > 0:
            self.left[provider] -= 1
            return 0.0
        if provider not in self.dry:
            got, wait = self.limiter.take(provider, min(want, self.batch), self.now)
            if got < min(want, self.batch):
                self.dry[provider] = wait  # after these, nothing more in this pass
            if got > 0:
                self.left[provider] = got - 1
                return 0.0
        rate = self.limiter.per_second(provider)
        wait = self.dry[provider] + (self.behind[provider] / rate if rate else 0.0)
        self.behind[provider] += 1
        return wait

    def close(self) -> None:
        for provider, n in self.left.items():
            if n > 0:
                self.limiter.refund(provider, n, self.now)
        self.left.clear()


def store_problems(policy: PolicySettings, database_url: str) -> list[str]:
    """What keeps the chosen store from working, each as ``key: what to do`` (checked when the
    settings load, so that a replica refuses to start rather than fail at its first claim)."""
    out = []
    if policy.rate_store == "database" and not database_url.startswith(("postgresql", "postgres:")):
        out.append("policy.rate_store: 'database' keeps the rate buckets in PostgreSQL, and database_url is not "
                   "PostgreSQL; use 'memory' (one process) or set policy.redis_url")
    if policy.redis_url is not None and policy.rate_store in ("auto", "redis"):
        try:
            import redis  # noqa: F401
        except ImportError:
            out.append("policy.redis_url: the redis package is missing; pip install 'vigil-alerts[redis]'")
    return out


def limiter_for(policy: PolicySettings, sessions: sessionmaker[Session] | None = None) -> Limiter:
    """The limiter ``policy.rate_store`` names; ``auto``: Redis when ``redis_url`` is set, else the
    database when it is PostgreSQL, else in-process."""
    store = policy.rate_store
    engine = _engine_of(sessions)
    if store == "auto":
        if policy.redis_url is not None:
            store = "redis"
        elif engine is not None and engine.dialect.name == "postgresql":
            store = "database"
        else:
            store = "memory"
    if store == "redis":
        assert policy.redis_url is not None  # the settings refuse redis without a URL
        return RedisLimiter(policy.redis_url.get_secret_value(), policy.rates, prefix=policy.redis_prefix,
                            default_backoff=policy.default_backoff_seconds)
    if store == "database":
        if engine is None:
            raise ValueError("policy.rate_store 'database' needs the engine's database")
        return DatabaseLimiter(engine, policy.rates, default_backoff=policy.default_backoff_seconds)
    return RateLimiter.from_settings(policy)


def _engine_of(sessions: sessionmaker[Session] | None) -> Engine | None:
    if sessions is None:
        return None
    bind = sessions.kw.get("bind")
    return bind if isinstance(bind, Engine) else None
