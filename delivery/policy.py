"""Delivery policy: how often one account may be messaged, and how fast one provider may be called.

Two independent brakes, both pure (no I/O, ``now`` is passed in):

* **Per-account budget** (:func:`budget_verdict`): at most ``max`` messages per ``per_seconds``
  on a channel (default: 5 SMS an hour).  A message over budget is *held*, never dropped: an
  ordinary one waits until the window frees; a critical one (a takeover, the freeze guidance)
  still goes out, but at most once per ``coalesce_seconds``, and everything held for that
  account and channel rides along in it (the delivery job marks those rows ``coalesced``).
* **Per-provider rate** (:class:`RateLimiter`): a token bucket per transport (``sms`` = Twilio,
  ``push`` = FCM, ...).  When a provider answers "too many requests" (HTTP 429, Twilio 20429, FCM
  ``QUOTA_EXCEEDED``: ``DeliveryResult.action == "backoff"``), the bucket is emptied and blocked
  for the provider's ``retry_after`` (or ``default_backoff_seconds``) so that no worker in this
  process keeps hammering it.  This bucket lives in memory, for one process (SQLite);
  :mod:`delivery.ratelimit` keeps the same bucket in PostgreSQL or Redis, where every replica
  takes from it (``policy.rate_store``).

``PolicySettings`` is the settings section (``policy:`` in the YAML file).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

RateStore = Literal["auto", "memory", "database", "redis"]


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max: int = Field(ge=1, description="messages allowed in the window")
    per_seconds: int = Field(ge=1, description="the sliding window")


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_second: float = Field(gt=0, description="sustained requests per second to the provider")
    burst: float = Field(default=1.0, ge=1, description="requests allowed at once after a quiet spell")


class PolicySettings(BaseModel):
    """The ``policy`` settings section."""

    model_config = ConfigDict(extra="forbid")
    budgets: dict[str, Budget] = Field(
        default_factory=lambda: {"sms": Budget(max=5, per_seconds=3600)},
        description="per-account budget per channel; a channel not listed is unlimited",
    )
    coalesce_seconds: float = Field(
        default=600.0, ge=0, description="over budget, critical messages go out at most once per this")
    critical_priority: int = Field(
        default=0, description="outbox priority at or below which a message is critical (0: critical)")
    critical_purposes: list[str] = Field(
        default_factory=lambda: ["guidance", "freeze", "denied"],
        description="purposes that are always critical (the freeze guidance)")
    rates: dict[str, RateLimit] = Field(default_factory=dict, description="token bucket per transport")
    rate_store: RateStore = Field(
        default="auto", description="where the provider buckets live: memory (one process), database "
                                    "(PostgreSQL), redis; auto: redis when redis_url is set, else the "
                                    "database on PostgreSQL, else memory")
    redis_url: SecretStr | None = Field(default=None, description="redis://host:6379/0 for rate_store redis")
    redis_prefix: str = Field(default="vigil:rate:", min_length=1, description="prefix of the buckets' Redis keys")
    rate_batch: int = Field(
        default=10, ge=1, le=1000, description="tokens a worker takes from a shared bucket in one round trip "
                                               "(at most what its claim needs; unused ones go back)")
    default_backoff_seconds: float = Field(
        default=30.0, gt=0, description="the wait after a 429 that names no Retry-After")
    receipt_channels: list[str] = Field(
        default_factory=lambda: ["sms"], description="channels whose provider sends delivery receipts")
    receipt_timeout_seconds: int = Field(default=600, ge=1, description="no receipt after this: fall back")
    receipt_retry_seconds: int = Field(
        default=300, ge=1, description="delay of the one retry an undelivered receipt earns (30003, 30008)")
    max_throttled: int = Field(
        default=20, ge=0, description="rate-limited attempts that do not count against delivery.max_attempts")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a Redis URL starts with redis://, rediss:// (TLS) or unix://")
        return v

    @model_validator(mode="after")
    def _store(self) -> PolicySettings:
        if self.rate_store == "redis" and self.redis_url is None:
            raise ValueError("policy.rate_store is 'redis' but policy.redis_url is not set")
        return self

    def is_critical(self, priority: int, purpose: str) -> bool:
        return priority <= self.critical_priority or purpose in self.critical_purposes


@dataclass(frozen=True)
class Verdict:
    """``send`` now, or hold until ``until``.  ``over_budget``: sent beyond the budget (critical)."""

    send: bool
    until: datetime | None = None
    over_budget: bool = False
    reason: str = ""


SEND = Verdict(True)


def budget_verdict(budget: Budget | None, sent: Iterable[datetime], *, now: datetime, critical: bool,
                   coalesce: timedelta) -> Verdict:
    """May one more message go to this account on this channel now?

    ``sent`` are the times of the account's earlier messages on the channel (any order; older
    ones are ignored).  A hold names the moment the message may be tried again.
    """
    if budget is None:
        return SEND
    per = timedelta(seconds=budget.per_seconds)
    window = sorted(t for t in sent if now - per < t <= now)
    if len(window) < budget.max:
        return SEND
    label = f"{budget.max} per {_span(budget.per_seconds)}"
    if critical:
        ready = window[-1] + coalesce
        if ready <= now:
            return Verdict(True, over_budget=True, reason=f"critical: sent beyond the budget of {label}")
        return Verdict(False, until=ready, reason=f"critical, coalesced: budget of {label} used")
    # the window frees when enough of the oldest sends age out of it
    return Verdict(False, until=window[len(window) - budget.max] + per, reason=f"budget of {label} used")


def _span(seconds: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``blocked_until`` after a provider's 429."""

    def __init__(self, rate: float | None, burst: float = 1.0) -> None:
        self.rate = rate  # None: unlimited, only ever blocked by a 429
        self.burst = burst
        self.tokens = burst
        self.updated: datetime | None = None
        self.blocked_until: datetime | None = None

    def _refill(self, now: datetime) -> None:
        if self.rate is None:
            self.tokens = self.burst
        elif self.updated is not None:
            elapsed = max(0.0, (now - self.updated).total_seconds())  # clocks of two workers may differ
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def take(self, now: datetime) -> float:
        """Take one token: 0.0, or the seconds to wait before asking again (nothing taken)."""
        return self.take_many(1, now)[1]

    def take_many(self, n: int, now: datetime) -> tuple[int, float]:
        """Take up to ``n`` tokens: how many were taken, and (fewer than ``n``) the seconds to wait
        before the next one."""
        if self.blocked_until is not None and now < self.blocked_until:
            return 0, (self.blocked_until - now).total_seconds()
        self._refill(now)
        if self.rate is None:
            return n, 0.0
        got = min(n, int(self.tokens + 1e-9))
        self.tokens = max(0.0, self.tokens - got)
        return got, 0.0 if got == n else (1.0 - self.tokens) / self.rate

    def refund(self, n: int) -> None:
        if self.rate is not None:
            self.tokens = min(self.burst, self.tokens + n)

    def block(self, now: datetime, seconds: float) -> None:
        until = now + timedelta(seconds=seconds)
        if self.blocked_until is None or until > self.blocked_until:
            self.blocked_until = until
        self.tokens = 0.0
        self.updated = max(self.updated or now, now)


class RateLimiter:
    """One token bucket per provider.  Providers without a configured rate are only blocked by
    their own 429s.  Thread-safe: the workers of one process share it."""

    def __init__(self, rates: Mapping[str, RateLimit] | None = None, *,
                 default_backoff: float = 30.0) -> None:
        self._rates = dict(rates or {})
        self._default_backoff = default_backoff
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, policy: PolicySettings) -> RateLimiter:
        return cls(policy.rates, default_backoff=policy.default_backoff_seconds)

    def _bucket(self, provider: str) -> TokenBucket:
        b = self._buckets.get(provider)
        if b is None:
            r = self._rates.get(provider)
            # no configured rate: a bucket that never runs dry, but can still be blocked by a 429
            b = TokenBucket(r.per_second, r.burst) if r else TokenBucket(None)
            self._buckets[provider] = b
        return b

    def acquire(self, provider: str, now: datetime) -> float:
        """0.0 if a request may go now, else the seconds to wait."""
        with self._lock:
            return self._bucket(provider).take(now)

    def take(self, provider: str, n: int, now: datetime) -> tuple[int, float]:
        """Up to ``n`` requests at once: how many may go, and the wait before the next one."""
        with self._lock:
            return self._bucket(provider).take_many(n, now)

    def per_second(self, provider: str) -> float | None:
        r = self._rates.get(provider)
        return r.per_second if r else None

    def refund(self, provider: str, n: int, now: datetime) -> None:
        """Give back tokens taken but not used (their messages were held or skipped)."""
        with self._lock:
            self._bucket(provider).refund(n)

    def backoff(self, provider: str, now: datetime, retry_after: float | None) -> float:
        """The provider said "too many requests": stop calling it for ``retry_after`` seconds."""
        wait = retry_after if retry_after and retry_after > 0 else self._default_backoff
        with self._lock:
            self._bucket(provider).block(now, wait)
        return wait

    def blocked_until(self, provider: str) -> datetime | None:
        with self._lock:
            b = self._buckets.get(provider)
            return b.blocked_until if b else None
