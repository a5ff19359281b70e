"""The rule-file schema: strict pydantic models (unknown keys are errors).

A rule file is a mapping with ``rules:`` (a list) and optionally ``detectors:`` (parameters per
detector).  Actions are a discriminated union on ``type``; the YAML shorthand ``freeze`` or
``{ticket: {...}}`` is normalised to the tagged form before validation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.durations import parse_duration

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
CHANNELS = ("push", "sms", "email", "webhook", "console")
CATEGORIES = ("account_security", "trading", "deposit_withdrawal", "api")
PRIORITIES = ("P1", "P2", "P3", "P4")

Duration = Annotated[timedelta, Field(description="like 30m, 1h, 2d")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(v: Any) -> timedelta:
    return parse_duration(v)


class FreezeAction(Strict):
    type: Literal["freeze"] = "freeze"
    scope: Literal["account", "withdrawals"] = "account"


class TicketAction(Strict):
    type: Literal["ticket"] = "ticket"
    category: Literal["account_security", "trading", "deposit_withdrawal", "api"]
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    queue: str | None = None


class WebhookAction(Strict):
    type: Literal["webhook"] = "webhook"
    name: str


class EscalateAction(Strict):
    type: Literal["escalate"] = "escalate"
    to: str = "security-staff"
    reminder: bool = True


Action = Annotated[FreezeAction | TicketAction | WebhookAction | EscalateAction, Field(discriminator="type")]


def normalise_action(v: Any) -> Any:
    """``freeze`` -> {type: freeze}; ``{ticket: {...}}`` -> {type: ticket, ...}."""
    if isinstance(v, str):
        return {"type": v}
    if isinstance(v, dict) and "type" not in v and len(v) == 1:
        (name, body), = v.items()
        if body is None:
            body = {}
        if isinstance(body, dict):
            return {"type": name, **body}
    return v


class Notify(Strict):
    channels: list[Literal["push", "sms", "email", "webhook", "console"]] = Field(min_length=1)
    template: str
    confirm: bool = False
    expires: timedelta = timedelta(minutes=30)
    strategy: Literal["all", "fallback"] = "all"

    _dur = field_validator("expires", mode="before")(_duration)

    @field_validator("channels")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a channel is listed twice")
        return v


class Throttle(Strict):
    key: Literal["account_id", "account_id+detector", "account_id+kind"] = "account_id"
    per: timedelta
    max: int = Field(1, ge=1)

    _dur = field_validator("per", mode="before")(_duration)


class Group(Strict):
    window: timedelta
    _dur = field_validator("window", mode="before")(_duration)


class Segments(Strict):
    tiers: list[str] | None = None
    locales: list[str] | None = None
    min_account_age_days: int | None = Field(None, ge=0)
    max_account_age_days: int | None = Field(None, ge=0)


class Rule(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{1,79}$")
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
    inhibit: bool = False
    segments: Segments | None = None

    @field_validator("on_match", "on_denied", "on_confirmed", "on_expired", mode="before")
    @classmethod
    def _actions(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [normalise_action(x) for x in v]
        return v

    @model_validator(mode="after")
    def _confirm_needs_notify(self) -> Rule:
        if (self.on_denied or self.on_confirmed or self.on_expired) and not (self.notify and self.notify.confirm):
            raise ValueError("on_denied, on_confirmed and on_expired need notify.confirm: true")
        return self

    @property
    def detectors(self) -> tuple[str, ...]:
        return (self.detector,) if isinstance(self.detector, str) else tuple(self.detector)


class RuleFile(Strict):
    version: Literal[1] = 1
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
