"""Load a rule set from a file or a directory, collecting every error of every file in one pass.

Each error reads ``path:line:col: rule "id": message``, with a "did you mean" suggestion where
one helps.  Positions come from ruamel.yaml's round-trip loader.  A rule whose structure is wrong
is still checked for everything else (its condition, detector, channels, template), so fixing
one mistake never reveals another that was there all along.

Settings that would be silently ignored are errors too (``expires`` without ``confirm``,
``on_denied`` without a confirmation, ``inhibit`` on a ``low`` rule): a rule file should never
say something the engine does not do (ElastAlert and Keep users' most common surprise).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from confkit import Recovered, recover
from detectors import DETECTORS, Detector
from rules.checks import Flagged, cross_checks
from rules.errors import (
    RuleError,
    error_at,
    field_path,
    humanise,
    locate,
    plain,
    scalar_position,
    show,
    suggest,
)
from rules.expr import Condition, ExpressionError
from rules.limits import YamlLimits, budget_problem, condition_problems, file_problems, yaml_problems
from rules.params import DetectorConfig, ParamCollector
from rules.schema import CHANNELS, FileHead, Rule

DEFAULT_PACK = Path(__file__).with_name("packs") / "default"
log = logging.getLogger(__name__)


__all__ = ["DEFAULT_PACK", "CompiledRule", "RuleError", "RuleLoadError", "RuleSet", "load_rules"]


@dataclass
class CompiledRule:
    rule: Rule
    condition: Condition | None
    source: str  # path:line
    rule_hash: str

    @property
    def id(self) -> str:
        return self.rule.id


@dataclass
class RuleSet:
    rules: list[CompiledRule]
    detectors: dict[str, Detector]  # the base instance of every registered detector
    content_hash: str
    paths: list[str] = field(default_factory=list)
    configs: dict[str, DetectorConfig] = field(default_factory=dict)
    warnings: list[RuleError] = field(default_factory=list)

    def for_detector(self, name: str) -> list[CompiledRule]:
        return [r for r in self.rules if r.rule.enabled and name in r.rule.detectors]

    def get(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def summary(self) -> list[dict[str, Any]]:
        """What an audit record keeps about each rule."""
        return [
            {
                "id": r.id,
                "hash": r.rule_hash,
                "mode": r.rule.mode,
                "enabled": r.rule.enabled,
                "severity": r.rule.severity,
                "source": r.source,
            }
            for r in self.rules
        ]


class RuleLoadError(Exception):
    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def rule_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(
            x
            for x in p.rglob("*")
            if x.suffix in (".yaml", ".yml")
            and x.is_file()
            and not any(part.startswith(".") for part in x.relative_to(p).parts)
        )
    return [p]


def content_hash(path: str | Path) -> str:
    """The hash of every rule file's name and bytes: what hot reload compares and audit records."""
    root = Path(path)
    base = root if root.is_dir() else root.parent
    return _digest([(f.relative_to(base).as_posix(), _read(f)) for f in rule_files(root)])


def _read(f: Path) -> bytes | None:
    try:
        return f.read_bytes()
    except OSError:
        return None


def _digest(entries: Iterable[tuple[str, bytes | None]]) -> str:
    digest = hashlib.sha256()
    for rel, data in entries:
        digest.update(rel.encode() + b"\0" + hashlib.sha256(b"\0missing" if data is None else data).digest())
    return digest.hexdigest()


def load_rules(
    path: str | Path | None = None,
    *,
    templates: Iterable[str] | None = None,
    channels: Iterable[str] | None = None,
    registry: Mapping[str, type[Detector]] | None = None,
) -> RuleSet:
    """Load and validate; raise :class:`RuleLoadError` listing every problem found.

    The rules package knows no notifier: the composition root (``vigil.bootstrap.rule_inputs``)
    passes the ``templates`` the notifiers can render and the ``channels`` they know.  Without
    them, channels are checked against the built-in names and templates are not checked (said
    in a warning).  ``registry`` defaults to the installed detectors.

    Any other exception while loading (a bug, or an input nobody foresaw) is turned into a
    :class:`RuleLoadError` too, after logging it: a rule set that did not load cleanly is refused,
    never half-applied, and the caller keeps its last good set.
    """
    root = Path(path) if path is not None else DEFAULT_PACK
    try:
        return _load(root, templates, channels, registry)
    except RuleLoadError:
        raise
    except Exception as e:
        log.error("loading the rule set at %s failed unexpectedly: %s: %s", root, type(e).__name__, e)
        log.debug("the failure", exc_info=True)
        raise RuleLoadError([RuleError(str(root), 0, 0, None, f"the rule set could not be loaded "
                                       f"({type(e).__name__}: {str(e)[:200]}); it was refused")]) from None


def _load(
    root: Path,
    templates: Iterable[str] | None,
    channels: Iterable[str] | None,
    registry: Mapping[str, type[Detector]] | None,
) -> RuleSet:
    files = rule_files(root)
    if not root.exists():
        raise RuleLoadError([RuleError(str(root), 1, 1, None, "no such file or directory")])
    if not files:
        raise RuleLoadError([RuleError(str(root), 1, 1, None, "no .yaml rule files found here")])
    tmpl = set(templates) if templates is not None else None
    ctx = _Context(
        registry=dict(registry if registry is not None else DETECTORS),
        channels=tuple(channels) if channels is not None else CHANNELS,
        templates=tmpl,
    )
    ctx.params = ParamCollector(ctx.registry)
    warnings: list[RuleError] = []
    if tmpl is None:
        warnings.append(
            RuleError(str(root), 0, 0, None, "template names not checked: no template list was given")
        )
    errors: list[RuleError] = []
    base = root if root.is_dir() else root.parent
    read: list[tuple[str, bytes | None]] = []
    for f in files:
        data = _read(f)
        read.append((f.relative_to(base).as_posix(), data))
        errors.extend(_load_file(f, data, ctx))
    configs, perrs = ctx.params.build()
    errors.extend(perrs)
    if errors:
        raise RuleLoadError(sorted(errors, key=lambda e: (e.path, e.line, e.col)))
    for name in ctx.registry:
        if not any(name in r.rule.detectors and r.rule.enabled for r in ctx.compiled):
            warnings.append(
                RuleError(
                    str(root), 0, 0, None, f"detector '{name}' has no enabled rule: its findings alert nobody"
                )
            )
    return RuleSet(
        ctx.compiled,
        {n: c.base for n, c in configs.items()},
        _digest(read),  # of the very bytes validated, not of a later read
        [str(f) for f in files],
        configs,
        warnings,
    )


@dataclass
class _Context:
    registry: dict[str, type[Detector]]
    channels: tuple[str, ...]
    templates: set[str] | None
    params: ParamCollector = field(init=False)
    compiled: list[CompiledRule] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # rule id -> path:line


def _load_file(f: Path, data: bytes | None, ctx: _Context) -> list[RuleError]:
    path = str(f)
    if data is None:
        return [RuleError(path, 1, 1, None, "the file cannot be read")]
    too_big = file_problems(data)
    if too_big:
        return [RuleError(path, line, col, None, msg) for line, col, msg in too_big]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return [RuleError(path, 1, 1, None, f"not UTF-8 text (byte {e.start}); save the file as UTF-8")]
    tabs = [
        RuleError(
            path, n, line.index("\t") + 1, None, "a tab character in the indentation: YAML needs spaces"
        )
        for n, line in enumerate(text.split("\n"), 1)
        if "\t" in line[: len(line) - len(line.lstrip())]
    ]
    # a syntax error leaves out the rule (or section) that holds it; the rest is still checked
    rec = recover(text, guard=yaml_problems, event_guard=YamlLimits, unit="rule", broken=[e.line for e in tabs])
    syntax = tabs + [RuleError(path, line, col, None, msg) for line, col, msg in rec.problems]
    doc = rec.doc
    if doc is None and syntax:
        return syntax
    if doc is None:
        return [RuleError(path, 1, 1, None, "the file is empty; expected 'rules:' (a list of rules)")]
    if not isinstance(doc, CommentedMap):
        hint = "; put the list under a 'rules:' key" if isinstance(doc, list) else ""
        return syntax or [RuleError(path, 1, 1, None,
                                    f"the top level must be a mapping with a 'rules:' list{hint}")]
    if "rules" not in doc and "detectors" not in doc and not (set(map(str, doc)) - {"version"}):
        return syntax or [
            RuleError(path, 1, 1, None, "nothing here: expected 'rules:' (a list of rules) or 'detectors:'")
        ]
    return syntax + [e for e in _check_file(path, text, doc, ctx, rec) if not rec.skips(e.line)]


def _check_file(path: str, text: str, doc: CommentedMap, ctx: _Context, rec: Recovered) -> list[RuleError]:
    errs: list[RuleError] = []
    # a section whose every entry was left out for a syntax error reads as empty: not a mistake
    emptied = {str(k) for k in doc if doc[k] is None and rec.skips(_next_content(text, doc.lc.key(k)[0] + 1))}
    head = {str(k): plain(v) for k, v in doc.items() if str(k) not in emptied}
    try:
        FileHead.model_validate(head)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            if loc[:1] == ("detectors",) and len(loc) > 1:
                continue  # reported by the parameter checks below, with better words
            line, col, _ = locate(doc, loc, key=err["type"] == "extra_forbidden")
            errs.append(
                RuleError(path, line, col, None, f"{field_path(loc)}: {humanise(err, loc, FileHead)}")
            )
    if "detectors" in doc and doc["detectors"] is not None and "detectors" not in emptied:
        errs += ctx.params.add_section(path, doc, doc["detectors"])
    rules = doc.get("rules")
    if isinstance(rules, list):
        for i, item in enumerate(rules):
            if item is None and rec.skips(locate(doc, ("rules", i))[0]):
                continue  # the placeholder of a rule left out for a syntax error
            errs += _check_rule(path, text, doc, i, item, ctx)
    return errs


def _next_content(text: str, line: int) -> int:
    """The first line after ``line`` (1-based) that holds more than blanks or a comment."""
    lines = text.split("\n")
    for n in range(line, len(lines)):
        if lines[n].strip() and not lines[n].lstrip().startswith("#"):
            return n + 1
    return 0


def _check_rule(path: str, text: str, doc: CommentedMap, i: int, item: Any, ctx: _Context) -> list[RuleError]:
    line, _, _ = locate(doc, ("rules", i))
    if not isinstance(item, CommentedMap):
        return [error_at(path, doc, ("rules", i),
                         f"rules[{i}]: a rule is a mapping (id:, detector:, severity:, ...), got {show(plain(item))}")]
    rid = item.get("id") if isinstance(item.get("id"), str) else None
    who = rid or f"#{i + 1}"
    errs: list[RuleError] = []

    def err(loc: tuple[Any, ...], msg: str, key: bool = False) -> None:
        el, ec, _ = locate(doc, ("rules", i, *loc), key=key)
        errs.append(RuleError(path, el, ec, who, f"{field_path(loc)}: {msg}" if loc else msg))

    rule: Rule | None = None
    bad = Flagged()
    try:
        rule = Rule.model_validate(plain(item))
    except ValidationError as e:
        found = e.errors()
        extras = {tuple(pe["loc"]) for pe in found if pe["type"] == "extra_forbidden"}
        for pe in found:
            loc = tuple(pe["loc"])
            bad.add(loc)
            if pe["type"] == "missing" and any(
                x[:-1] == loc[:-1] and suggest(x[-1], [str(loc[-1])]) for x in extras
            ):
                continue  # "unknown key 'categry'. Did you mean 'category'?" says it already
            el, ec, walked = locate(doc, ("rules", i, *loc), key=pe["type"] == "extra_forbidden")
            shown = (
                walked[2:]
                if pe["type"] == "missing"
                else [
                    p for p in loc if p in walked[2:] or p not in ("freeze", "ticket", "webhook", "escalate")
                ]
            )
            msg = humanise(pe, loc, Rule)
            errs.append(RuleError(path, el, ec, who, f"{field_path(shown)}: {msg}" if shown else msg))
    if rid is not None and "id" not in bad:
        if rid in ctx.seen:
            err(("id",), f"duplicate rule id; '{rid}' is already defined at {ctx.seen[rid]}")
            bad.add(("id",))
        else:
            ctx.seen[rid] = f"{path}:{line}"
    dets = item.get("detector")
    names = (
        [dets]
        if isinstance(dets, str)
        else [d for d in dets if isinstance(d, str)]
        if isinstance(dets, list)
        else []
    )
    for j, d in enumerate(names):
        if d not in ctx.registry:
            err(
                ("detector",) if isinstance(dets, str) else ("detector", j),
                f"unknown detector '{d}'{suggest(d, ctx.registry)}",
            )
            bad.add(("detector",))
    cond = _condition(path, text, doc, i, item, names, ctx, errs, who) if "when" not in bad else None
    if cond is False:
        bad.add(("when",))
    cross_checks(item, bad, ctx.channels, ctx.templates, err)
    if rule is not None and not errs:
        src = json.dumps(plain(item), sort_keys=True, default=str)
        ctx.compiled.append(
            CompiledRule(
                rule,
                cond if isinstance(cond, Condition) else None,
                f"{path}:{line}",
                hashlib.sha256(src.encode()).hexdigest()[:16],
            )
        )
    return errs


def _condition(
    path: str,
    text: str,
    doc: CommentedMap,
    i: int,
    item: CommentedMap,
    names: list[str],
    ctx: _Context,
    errs: list[RuleError],
    who: str,
) -> Condition | bool | None:
    when = item.get("when")
    if not isinstance(when, str) or not when.strip():
        return None
    evidence: dict[str, Any] | None = None
    declared = [getattr(ctx.registry.get(n), "evidence_fields", None) for n in names]
    if names and all(isinstance(d, Mapping) for d in declared):
        evidence = {}
        for d in declared:
            evidence.update(d)  # type: ignore[arg-type]
    vl, vc = item.lc.value("when")

    def at(offset: int) -> tuple[int, int]:
        return scalar_position(text, vl + 1, vc + 1, when, offset)

    over = condition_problems(when)
    if over:
        errs.extend(RuleError(path, *at(offset), who, f"when: {msg}") for offset, msg in over)
        return False
    try:
        cond = Condition(when, evidence)
    except ExpressionError as e:
        for line, col, msg in e.problems:
            errs.append(RuleError(path, *at(_offset(when, line, col)), who, f"when: {msg}"))
        return False
    costly = budget_problem(cond.tree)
    if costly:
        errs.append(RuleError(path, *at(0), who, f"when: {costly}"))
        return False
    return cond


def _offset(text: str, line: int, col: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
