"""``vigil rules explain RULE_ID``: what a rule matches, with which parameters, and what it then does.

Staff read this before a change goes live, so it says everything that decides the rule's
behaviour -- including the detector parameters set elsewhere in the rule set and defaults
nobody wrote down -- in words, with the file and line each value comes from.
"""

from __future__ import annotations

from typing import Any

from detectors.base import Detector
from rules.celparse import Node
from rules.durations import format_duration
from rules.loader import CompiledRule, RuleSet
from rules.params import DetectorConfig
from rules.schema import EscalateAction, FreezeAction, Rule, Segments, TicketAction, WebhookAction

_OPS = {
    "==": "is",
    "!=": "is not",
    "<": "is below",
    "<=": "is at most",
    ">": "is above",
    ">=": "is at least",
    "in": "is one of",
}
_GETTERS = {
    "getHours": "hour",
    "getMinutes": "minute",
    "getDayOfWeek": "day of the week (0 = Sunday)",
    "getFullYear": "year",
    "getMonth": "month (0 = January)",
    "getDate": "day of the month",
}


def describe_condition(node: Node, src: str) -> str:
    """A condition in words (falls back to the source text for what it cannot phrase)."""

    def text(n: Node) -> str:
        return src[n.pos : n.end]

    def go(n: Node, parent: str = "") -> str:
        if n.kind == "lit":
            return text(n)
        if n.kind in ("ident", "select", "index"):
            return _field_words(text(n))
        if n.kind == "unary" and n.value == "!":
            return f"not ({go(n.args[0])})"
        if n.kind == "binary":
            op = n.value
            if op in ("&&", "||"):
                word = " and " if op == "&&" else " or "
                out = go(n.args[0], op) + word + go(n.args[1], op)
                return f"({out})" if parent and parent != op else out
            if op in _OPS:
                return f"{go(n.args[0], op)} {_OPS[op]} {go(n.args[1], op)}"
            return text(n)
        if n.kind == "call":
            fn, t = n.value, n.target
            args = [go(a) for a in n.args]
            if t is not None and fn == "startsWith":
                return f"{go(t)} starts with {args[0]}"
            if t is not None and fn == "endsWith":
                return f"{go(t)} ends with {args[0]}"
            if t is not None and fn == "contains":
                return f"{go(t)} contains {args[0]}"
            if fn == "matches":
                subject = go(t) if t is not None else args.pop(0)
                return f"{subject} matches the pattern {args[0]}"
            if fn == "size":
                return f"the size of {go(t) if t is not None else args[0]}"
            if fn == "has" and n.args:
                return f"{args[0]} is present"
            if t is not None and fn in ("exists", "all", "exists_one") and len(n.args) == 2:
                quant = {"exists": "some", "all": "every", "exists_one": "exactly one"}[fn]
                return f"{quant} {n.args[0].value} in {go(t)} has {go(n.args[1])}"
            if t is not None and fn in _GETTERS:
                return f"the {_GETTERS[fn]} of {go(t)} (UTC)"
        return text(n)

    return go(node)


def _field_words(path: str) -> str:
    parts = path.replace("[", ".").replace("]", "").replace('"', "").split(".")
    if parts[:2] == ["finding", "evidence"] and len(parts) > 2:
        return f"the evidence's {'.'.join(parts[2:])}"
    if parts[0] in ("finding", "account") and len(parts) > 1:
        return f"the {parts[0]}'s {'.'.join(parts[1:]).replace('_', ' ')}"
    if parts[0] == "profile" and len(parts) > 1:
        return f"the profile's {'.'.join(parts[1:])}"
    return path


def describe_segments(seg: Segments | None) -> str:
    if seg is None:
        return "every account"
    bits = []
    if seg.tiers:
        bits.append(f"tier {' or '.join(seg.tiers)}")
    if seg.exclude_tiers:
        bits.append(f"tier not {' nor '.join(seg.exclude_tiers)}")
    if seg.locales:
        bits.append(f"locale {' or '.join(seg.locales)}")
    if seg.min_account_age_days is not None:
        bits.append(f"account at least {seg.min_account_age_days} days old")
    if seg.max_account_age_days is not None:
        bits.append(f"account at most {seg.max_account_age_days} days old")
    return "accounts with " + ", ".join(bits)


def describe_action(a: Any) -> str:
    if isinstance(a, FreezeAction):
        return "freeze the account" if a.scope == "account" else "block withdrawals"
    if isinstance(a, TicketAction):
        return f"open a {a.priority} ticket ({a.category}{', queue ' + a.queue if a.queue else ''})"
    if isinstance(a, WebhookAction):
        return f"post to the webhook '{a.name}'"
    if isinstance(a, EscalateAction):
        return f"escalate to {a.to}" + (" with reminders" if a.reminder else "")
    return str(a)


def _params(conf: DetectorConfig, cls: type[Detector]) -> list[str]:
    out = []
    width = max((len(k) for k in cls.params), default=0)
    for name, p in cls.params.items():
        value = conf.base.p[name]
        where = f"set at {conf.sources[name]}" if name in conf.sources else "default"
        out.append(f"    {name:<{width}} = {_value(value):<8} ({where}) {p.doc}")
    for o in conf.overrides:
        changes = ", ".join(f"{k} = {_value(v)}" for k, v in o.params.items())
        out.append(f"    for {describe_segments(o.segment)}: {changes} (set at {o.source})")
    return out


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) >= 1 else str(v)
    return str(v)


def explain(rules: RuleSet, rule_id: str) -> str:
    cr = rules.get(rule_id)
    if cr is None:
        raise KeyError(rule_id)
    return "\n".join(_lines(rules, cr))


def _lines(rules: RuleSet, cr: CompiledRule) -> list[str]:
    r: Rule = cr.rule
    state = ("enabled" if r.enabled else "DISABLED") + (
        ", shadow: records would-be alerts, notifies nobody" if r.shadow else ", live"
    )
    out = [f'rule "{r.id}" ({state}), severity {r.severity}']
    if r.description:
        out.append(f"  {r.description}")
    out.append(f"  owner: {r.owner or '(none)'}; defined at {cr.source}; version {cr.rule_hash}")
    out.append("")
    out.append("matches")
    for name in r.detectors:
        conf = rules.configs.get(name)
        cls = type(conf.base) if conf else None
        doc = f" ({cls.family}): {cls.description}" if cls else ""
        out.append(f"  findings of {name}{doc}")
    if cr.condition is not None:
        out.append(f"  when {r.when}")
        if cr.condition.tree is not None:
            out.append(f"     = {describe_condition(cr.condition.tree, cr.condition.source)}")
        if cr.condition.fields:
            out.append(f"     reads {', '.join(cr.condition.fields)}")
    else:
        out.append("  every finding (no condition)")
    out.append(f"  for {describe_segments(r.segments)}")
    if r.schedule is None:
        out.append("  at any time")
    else:
        zone = "the account's time zone" if r.schedule.timezone == "account" else r.schedule.timezone
        for w in r.schedule.active:
            end = w.end.strftime("%H:%M") if w.end else "24:00"
            out.append(
                f"  active {', '.join(w.days)} {w.start.strftime('%H:%M')}-{end} ({zone}, at the "
                f"finding's time)"
            )
    for name in r.detectors:
        conf = rules.configs.get(name)
        if conf is not None:
            out.append("")
            out.append(f"with the parameters of {name}")
            out.extend(_params(conf, type(conf.base)))
    out.append("")
    out.append("then")
    out.extend(_then(r))
    return out


def _then(r: Rule) -> list[str]:
    out = []
    n = r.notify
    if n is None:
        out.append("  notify nobody (the alert is recorded for staff)")
    else:
        how = "all of" if n.strategy == "all" else "the first that works of"
        out.append(f"  notify the account holder on {how} {', '.join(n.channels)} (template '{n.template}')")
        if n.confirm:
            out.append(f'  ask "was this you?"; the answer is awaited for {format_duration(n.expires)}')
    for outcome, label in (
        ("match", "at once"),
        ("denied", 'if the holder answers "not me"'),
        ("confirmed", 'if the holder answers "it was me"'),
        ("expired", "if nobody answers in time"),
    ):
        acts = r.actions(outcome)
        if acts:
            out.append(f"  {label}: {'; '.join(describe_action(a) for a in acts)}")
    if r.throttle:
        t = r.throttle
        per = {
            "account_id": "account",
            "account_id+detector": "account and detector",
            "account_id+kind": "account and finding kind",
        }[t.key]
        out.append(
            f"  throttle: at most {t.max} alert(s) of this rule per {per} per {format_duration(t.per)}; "
            f"the rest are recorded as throttled"
        )
    if r.group:
        fam = "" if r.group.scope == "account" else " of the same family"
        out.append(
            f"  group: this account's alerts{fam} within {format_duration(r.group.window)} go out as one message"
        )
    if r.inhibit:
        scope = "" if r.inhibit.scope == "account" else " of the same family"
        out.append(
            f"  inhibit: mutes lower-severity alerts{scope} on the account for "
            f"{format_duration(r.inhibit.window)}"
        )
    out.append(
        "  allow-listed addresses mute it only where allow-list changes need step-up authentication"
        if r.suppressible == "step_up"
        else "  travel notices and allow-listed addresses can mute it"
        if r.suppressible
        else "  never muted by travel notices or allow-listed addresses"
    )
    return out
