"""The rule-file schema: strict pydantic models (unknown keys and wrong types are errors).

A rule file is a mapping with ``rules:`` (a list) and optionally ``detectors:`` (parameters per
detector, with per-segment overrides; validated by the loader against each detector's own
:class:`detectors.base.Param` constraints).  Actions are a discriminated union on ``type``; the
YAML shorthand ``freeze`` or ``{ticket: {...}}`` is normalised to the tagged form first.

Why strict mode: YAML 1.2 reads ``yes`` as text and ``"5"`` is text; accepting either silently
would hide a mistake in a file that decides whether an account gets frozen.

Checks that need the outside world (known detectors, channels and templates, the condition's
fields) live in :mod:`rules.loader`, so that one pass reports them with positions.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.durations import format_duration, parse_duration

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
CHANNELS = ("push", "sms", "email", "webhook", "console")
CATEGORIES = ("account_security", "trading", "deposit_withdrawal", "api")
PRIORITIES = ("P1", "P2", "P3", "P4")
ACTION_TYPES = ("freeze", "ticket", "webhook", "escalate")
OUTCOMES = ("on_match", "on_denied", "on_confirmed", "on_expired")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,79}$"
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_HHMM = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _bounded(lo: timedelta, hi: timedelta) -> Any:
    def check(v: Any) -> timedelta:
        td = parse_duration(v)
        if not lo <= td <= hi:
            span = f"{format_duration(lo)} and {format_duration(hi)}"
            raise ValueError(f"{format_duration(td)} is out of range; use between {span}")
        return td

    return check


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


# -- actions --------------------------------------------------------------------------------
class FreezeAction(Strict):
    """Freeze through the operator's freeze hook; ``withdrawals`` blocks only withdrawals."""

    type: Literal["freeze"] = "freeze"
    scope: Literal["account", "withdrawals"] = "account"


class TicketAction(Strict):
    type: Literal["ticket"] = "ticket"
    category: Literal["account_security", "trading", "deposit_withdrawal", "api"]
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    queue: str | None = Field(None, pattern=_NAME)


class WebhookAction(Strict):
    """Post the alert to a webhook that settings define under this name (never a URL in a rule)."""

    type: Literal["webhook"] = "webhook"
    name: str = Field(pattern=_NAME)


class EscalateAction(Strict):
    """Page security staff (the escalation policy named ``to``)."""

    type: Literal["escalate"] = "escalate"
    to: str = Field("security-staff", pattern=_NAME)
    reminder: bool = True


Action = Annotated[FreezeAction | TicketAction | WebhookAction | EscalateAction, Field(discriminator="type")]


def normalise_action(v: Any) -> Any:
    """``freeze`` -> {type: freeze}; ``{ticket: {...}}`` -> {type: ticket, ...}."""
    if isinstance(v, str):
        return {"type": v}
    if isinstance(v, dict) and "type" not in v and len(v) == 1:
        ((name, body),) = v.items()
        if body is None:
            body = {}
        if isinstance(body, dict):
            return {"type": name, **body}
    return v


# -- notification, throttling, grouping, inhibition ------------------------------------------
class Notify(Strict):
    channels: list[str] = Field(min_length=1)
    template: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    confirm: bool = False
    # which channels' "it was me" closes the alert (default: push and sms for high and critical
    # severity, every channel otherwise); a confirm by any other channel is recorded, not applied
    confirm_channels: list[str] | None = None
    expires: timedelta = timedelta(minutes=30)
    strategy: Literal["all", "fallback"] = "all"

    _dur = field_validator("expires", mode="before")(_bounded(MINUTE, 7 * DAY))

    @field_validator("channels", "confirm_channels")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        twice = sorted({c for c in v or () if v is not None and v.count(c) > 1})
        if twice:
            raise ValueError(f"the channel '{twice[0]}' is listed twice")
        return v


class Throttle(Strict):
    """At most ``max`` alerts per ``per`` for one key (an account, or an account and detector/kind)."""

    key: Literal["account_id", "account_id+detector", "account_id+kind"] = "account_id"
    per: timedelta
    max: int = Field(1, ge=1, le=1000)

    _dur = field_validator("per", mode="before")(_bounded(MINUTE, 30 * DAY))


class Group(Strict):
    """Coalesce one account's alerts raised within ``window`` into one message; with ``scope:
    family`` only the alerts of the same detector family whose rules group by family too (one
    withdrawal's questions, not a sign-in's)."""

    window: timedelta
    scope: Literal["account", "family"] = "account"

    _dur = field_validator("window", mode="before")(_bounded(MINUTE, DAY))


class Inhibit(Strict):
    """An alert of this rule mutes lower-severity alerts on the same account for ``window``."""

    window: timedelta = HOUR
    scope: Literal["account", "family"] = "account"

    _dur = field_validator("window", mode="before")(_bounded(MINUTE, 7 * DAY))


class Segments(Strict):
    """Which accounts a rule (or a parameter override) applies to; every given key must hold."""

    tiers: list[str] | None = Field(None, min_length=1)
    exclude_tiers: list[str] | None = Field(None, min_length=1)
    locales: list[str] | None = Field(None, min_length=1)
    min_account_age_days: int | None = Field(None, ge=0, le=36500)
    max_account_age_days: int | None = Field(None, ge=0, le=36500)

    @field_validator("locales")
    @classmethod
    def _locales(cls, v: list[str] | None) -> list[str] | None:
        for loc in v or ():
            if not _LOCALE.match(loc):
                raise ValueError(f"{loc!r} is not a locale tag; write e.g. 'en', 'zh-CN', 'ko'")
        return v

    @model_validator(mode="after")
    def _ages(self) -> Segments:
        lo, hi = self.min_account_age_days, self.max_account_age_days
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_account_age_days ({lo}) is greater than max_account_age_days ({hi})")
        return self


class Window(Strict):
    """An active window: on ``days``, from ``start`` to ``end`` (an end before the start crosses midnight)."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: time = time(0, 0)
    end: time | None = None  # None: until midnight

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            # YAML 1.1 reads 09:30 as a sexagesimal number; ruamel (YAML 1.2) does not, but be clear
            raise ValueError(f"write the time in quotes as 'HH:MM', got {v!r}")
        if not isinstance(v, str) or not _HHMM.match(v):
            raise ValueError(f"expected a time 'HH:MM' (24-hour), got {v!r}")
        h, m = (int(x) for x in v.split(":"))
        if h == 24:
            if m:
                raise ValueError(f"expected a time 'HH:MM' (24-hour), got {v!r}")
            return None  # 24:00 = midnight at the end of the day
        return time(h, m)


class Schedule(Strict):
    """When the rule is active, judged at the finding's time in ``timezone`` (IANA or ``account``)."""

    timezone: str = "UTC"
    active: list[Window] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        if v == "account":
            return v
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            hint = "use an IANA name like 'Asia/Seoul', or 'account'"
            raise ValueError(f"unknown time zone {v!r}; {hint}") from None
        return v


# -- the rule ---------------------------------------------------------------------------------
class Rule(Strict):
    id: str = Field(pattern=_NAME)
    description: str = ""
    owner: str = ""
    enabled: bool = True
    mode: Literal["live", "shadow"] = "live"
    detector: str | list[str]
    when: str | None = None
    severity: Literal["low", "medium", "high", "critical"]
    notify: Notify | None = None
    on_match: list[Action] = Field(default_factory=list)
    on_denied: list[Action] = Field(default_factory=list)
    on_confirmed: list[Action] = Field(default_factory=list)
    on_expired: list[Action] = Field(default_factory=list)
    throttle: Throttle | None = None
    group: Group | None = None
    inhibit: Inhibit | None = None
    segments: Segments | None = None
    schedule: Schedule | None = None
    # false: travel notices and allow-listed addresses never mute it; step_up: allow-listed addresses
    # mute it only where the exchange declares step-up authentication for allow-list changes
    # (settings: suppressions.allowlist_step_up) -- else whoever took the account can allow-list
    suppressible: bool | Literal["step_up"] = True

    @field_validator("detector", mode="before")
    @classmethod
    def _detector(cls, v: Any) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            if len(set(v)) != len(v):
                raise ValueError("a detector is listed twice")
            return v
        raise ValueError(f"expected a detector name or a list of detector names, got {v!r}")

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: Any) -> Any:
        if v is None or isinstance(v, str):
            if isinstance(v, str) and not v.strip():
                raise ValueError("the condition is empty; remove 'when' to match every finding")
            return v
        raise ValueError(f"expected a condition (text), got {v!r}; quote it if it is meant as text")

    @field_validator("inhibit", mode="before")
    @classmethod
    def _inhibit(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is False:
            return None
        return v

    @field_validator(*OUTCOMES, mode="before")
    @classmethod
    def _actions(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [normalise_action(x) for x in v]
        return v

    @property
    def detectors(self) -> tuple[str, ...]:
        return (self.detector,) if isinstance(self.detector, str) else tuple(self.detector)

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    def actions(self, outcome: str) -> list[FreezeAction | TicketAction | WebhookAction | EscalateAction]:
        """The actions for ``match``, ``denied``, ``confirmed`` or ``expired``."""
        return list(getattr(self, f"on_{outcome.removeprefix('on_')}"))


class FileHead(Strict):
    """The top level of a rule file; rules are validated one by one so one bad rule hides nothing."""

    version: Literal[1] = 1
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: list[Any] = Field(default_factory=list)


class RuleFile(Strict):
    """The whole file as one model (used by tools and docs; the loader validates piecewise)."""

    version: Literal[1] = 1
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
