"""Ticket policy in YAML: categories, queues, routing rules, SLA targets, calendars, escalation.

Security staff edit one file (the shipped default is ``tickets/policies/default.yaml``; settings can
point elsewhere).  It is validated strictly at load -- unknown keys, unknown queues, categories or
calendars, bad durations -- and every problem is reported at once as ``path:line:col: message``
with a "did you mean", like the rule files.  Routing itself is a pure first-match walk over
``routes`` (Alertmanager's tree flattened: a list is easier to read and to test).

    PolicyError          the file does not load; ``errors`` lists every problem
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import confkit
from confkit import suggest
from rules.durations import parse_duration

DEFAULT_POLICY = Path(__file__).with_name("policies") / "default.yaml"
PRIORITIES = ("P1", "P2", "P3", "P4")
SEVERITIES = ("low", "medium", "high", "critical")
SOURCES = ("alert", "text", "staff")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d-(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$")

Priority = Literal["P1", "P2", "P3", "P4"]


class PolicyError(Exception):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"the ticket policy has {len(errors)} error(s):\n" + "\n".join(errors))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def _duration(v: Any) -> timedelta:
    return parse_duration(v)


class Match(Strict):
    """Conditions of a route; an omitted key matches anything, a list matches any of its values."""

    category: list[str] | None = None
    priority: list[Priority] | None = None
    severity: list[Literal["low", "medium", "high", "critical"]] | None = None
    tier: list[str] | None = None
    language: list[str] | None = Field(None, description="BCP 47; 'zh' matches zh-CN and zh-TW")
    source: list[Literal["alert", "text", "staff"]] | None = None

    _lists = field_validator("*", mode="before")(_listify)

    def matches(self, facts: dict[str, str | None]) -> bool:
        for key in ("category", "priority", "severity", "tier", "source"):
            want = getattr(self, key)
            if want is not None and facts.get(key) not in want:
                return False
        if self.language is not None:
            lang = (facts.get("language") or "").lower()
            if not any(lang == w.lower() or lang.startswith(w.lower() + "-") for w in self.language):
                return False
        return True


class Route(Strict):
    name: str | None = None
    match: Match = Field(default_factory=lambda: Match.model_validate({}))
    queue: str


class EscalationStep(Strict):
    """One step of a breach escalation chain (Grafana OnCall's chain, reduced to what tickets need)."""

    after: timedelta | None = Field(None, description="time after the breach; omitted = at the breach")
    notify: str | None = Field(None, description="staff target, sent through the outbox channel 'escalate'")
    reassign: str | None = Field(None, description="move the ticket to this queue")
    assignee: str | None = Field(None, description="assign to this person (else unassigned on reassign)")
    raise_priority: bool = False

    _after = field_validator("after", mode="before")(lambda v: None if v in (None, 0, "0") else _duration(v))

    @model_validator(mode="after")
    def _does_something(self) -> EscalationStep:
        if not (self.notify or self.reassign or self.assignee or self.raise_priority):
            raise ValueError("an escalation step must notify, reassign, assign or raise_priority")
        return self


class Queue(Strict):
    description: str = ""
    notify: str | None = Field(None, description="staff target for SLA warnings on this queue")
    escalation: list[EscalationStep] | None = Field(None, description="overrides the default chain")


class Triage(Strict):
    queue: str = "triage"
    min_confidence: float = Field(0.6, ge=0.0, le=1.0)


class Target(Strict):
    first_response: timedelta
    resolution: timedelta
    calendar: str | None = None
    warn_before: timedelta | None = None

    _d = field_validator("first_response", "resolution", "warn_before", mode="before")(
        lambda v: None if v is None else _duration(v))


class Calendar(Strict):
    """Business hours: the SLA clock only runs inside them (local time of ``timezone``)."""

    timezone: str = "UTC"
    hours: dict[str, list[str]]
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like 'Asia/Seoul'") from None
        return v

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError("hours is a mapping of weekday (mon..sun) to '09:00-18:00' (or a list of them)")
        out: dict[str, list[str]] = {}
        for day, spans in v.items():
            d = str(day).lower()
            if d not in WEEKDAYS:
                hint = suggest(d, WEEKDAYS) or f"; use one of {', '.join(WEEKDAYS)}"
                raise ValueError(f"unknown weekday {day!r}{hint}")
            spans = _listify(spans) or []
            for s in spans:
                if not _HOURS.match(str(s)) or _minutes(str(s)[:5]) >= _minutes(str(s)[6:]):
                    raise ValueError(f"{day}: {s!r} is not a span like '09:00-18:00' (start before end)")
            out[d] = [str(s) for s in spans]
        if not any(out.values()):
            raise ValueError("a calendar needs at least one working span")
        return out

    def spans(self, weekday: int) -> list[tuple[int, int]]:
        """Working spans of a weekday (0 = Monday) in minutes after local midnight; 24:00 = 1440."""
        out = []
        for s in self.hours.get(WEEKDAYS[weekday], []):
            a, b = s.split("-")
            out.append((_minutes(a), _minutes(b)))
        return sorted(out)


def _minutes(hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return h * 60 + m


class Sla(Strict):
    targets: dict[Priority, Target]
    warn_at: float = Field(0.8, gt=0.0, lt=1.0, description="warn when this share of a target has elapsed")
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    pause_while_pending_user: bool = True


class TicketPolicy(Strict):
    version: Literal[1] = 1
    categories: list[str] = Field(
        default_factory=lambda: ["account_security", "trading", "deposit_withdrawal", "api"])
    queues: dict[str, Queue]
    routes: list[Route] = Field(default_factory=list)
    default_queue: str
    triage: Triage = Field(default_factory=lambda: Triage.model_validate({}))
    text_priority: dict[str, Priority] = Field(default_factory=dict,
                                               description="priority of tickets opened from a user's text")
    sla: Sla
    escalation: list[EscalationStep] = Field(default_factory=list, description="the default breach chain")

    def route(self, *, category: str, priority: str, severity: str | None = None, tier: str | None = None,
              language: str | None = None, source: str = "alert") -> tuple[str, str]:
        """(queue, why): the first matching route, else the default queue."""
        facts = {"category": category, "priority": priority, "severity": severity, "tier": tier,
                 "language": language, "source": source}
        for i, r in enumerate(self.routes):
            if r.match.matches(facts):
                return r.queue, r.name or f"routes[{i}]"
        return self.default_queue, "default_queue"

    def chain(self, queue: str) -> list[EscalationStep]:
        q = self.queues.get(queue)
        if q is not None and q.escalation is not None:
            return list(q.escalation)
        return list(self.escalation)

    def target(self, priority: str) -> Target:
        return self.sla.targets[priority]  # type: ignore[index]

    def calendar(self, priority: str) -> Calendar | None:
        name = self.target(priority).calendar
        return self.sla.calendars[name] if name else None

    def priority_for_text(self, category: str) -> str:
        return self.text_priority.get(category) or self.text_priority.get("default") or "P3"


def _references(p: TicketPolicy) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-reference checks pydantic cannot do: (location, message)."""
    errs: list[tuple[tuple[Any, ...], str]] = []
    queues = list(p.queues)

    def need_queue(loc: tuple[Any, ...], name: str | None) -> None:
        if name is not None and name not in p.queues:
            errs.append((loc, f"unknown queue {name!r}{suggest(name, queues)}"))

    need_queue(("default_queue",), p.default_queue)
    need_queue(("triage", "queue"), p.triage.queue)
    for i, r in enumerate(p.routes):
        need_queue(("routes", i, "queue"), r.queue)
        for c in r.match.category or []:
            if c not in p.categories:
                errs.append((("routes", i, "match", "category"),
                             f"unknown category {c!r}{suggest(c, p.categories)}"))
    for i, s in enumerate(p.escalation):
        need_queue(("escalation", i, "reassign"), s.reassign)
    for name, q in p.queues.items():
        for i, s in enumerate(q.escalation or []):
            need_queue(("queues", name, "escalation", i, "reassign"), s.reassign)
    for c in p.text_priority:
        if c != "default" and c not in p.categories:
            errs.append((("text_priority", c), f"unknown category {c!r}{suggest(c, p.categories)}"))
    missing = [x for x in PRIORITIES if x not in p.sla.targets]
    if missing:
        errs.append((("sla", "targets"),
                     f"a target is needed for every priority; missing {', '.join(missing)}"))
    for prio, t in p.sla.targets.items():
        if t.calendar is not None and t.calendar not in p.sla.calendars:
            errs.append((("sla", "targets", prio, "calendar"),
                         f"unknown calendar {t.calendar!r}{suggest(t.calendar, list(p.sla.calendars))}"))
        if t.first_response > t.resolution:
            errs.append((("sla", "targets", prio), "first_response is longer than resolution"))
    return errs


def load_policy(path: str | Path | None = None) -> TicketPolicy:
    """Read and validate a policy file; :class:`PolicyError` lists every problem at once."""
    p = Path(path) if path is not None else DEFAULT_POLICY
    where = str(p)
    try:
        doc = confkit.read_yaml(p, what="a mapping (queues:, routes:, sla:, ...)")
        try:
            policy = TicketPolicy.model_validate(confkit.plain(doc))
        except ValidationError as e:
            raise confkit.ConfigFileError(confkit.issues(e, TicketPolicy, doc=doc, path=where)) from None
    except confkit.ConfigFileError as e:
        raise PolicyError([str(i) for i in e.issues]) from None
    ref_errs = _references(policy)
    if ref_errs:
        found = [(confkit.locate(doc, loc)[:2], loc, msg) for loc, msg in ref_errs]
        raise PolicyError([str(confkit.Issue(where, ln, cn, confkit.field_path(loc), msg))
                           for (ln, cn), loc, msg in found])
    return policy


@lru_cache(maxsize=1)
def default_policy() -> TicketPolicy:
    """The shipped policy, read at first use (never at import)."""
    return load_policy(DEFAULT_POLICY)
