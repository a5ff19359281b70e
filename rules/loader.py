"""Load a rule set from a file or a directory, collecting every error of every file at once.

Each error reads ``path:line:col: rule "id": message``, with a "did you mean" suggestion where
one helps.  Positions come from ruamel.yaml's round-trip loader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from detectors import DETECTORS, Detector, ParameterError
from rules.expr import Condition, ExpressionError
from rules.schema import Rule, RuleFile

DEFAULT_PACK = Path(__file__).with_name("packs") / "default"


@dataclass(frozen=True)
class RuleError:
    path: str
    line: int
    col: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        who = f'rule "{self.rule_id}": ' if self.rule_id else ""
        return f"{self.path}:{self.line}:{self.col}: {who}{self.message}"


@dataclass
class CompiledRule:
    rule: Rule
    condition: Condition | None
    source: str
    rule_hash: str

    @property
    def id(self) -> str:
        return self.rule.id


@dataclass
class RuleSet:
    rules: list[CompiledRule]
    detectors: dict[str, Detector]
    content_hash: str
    paths: list[str] = field(default_factory=list)

    def for_detector(self, name: str) -> list[CompiledRule]:
        return [r for r in self.rules if r.rule.enabled and name in r.rule.detectors]

    def get(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


class RuleLoadError(Exception):
    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def rule_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
    return [p]


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load and validate; raise :class:`RuleLoadError` listing every problem found."""
    files = rule_files(path or DEFAULT_PACK)
    errors: list[RuleError] = []
    if not files:
        raise RuleLoadError([RuleError(str(path), 1, 1, None, "no .yaml rule files found here")])
    compiled: list[CompiledRule] = []
    params: dict[str, dict[str, Any]] = {}
    param_pos: dict[str, tuple[str, int, int]] = {}
    seen: dict[str, tuple[str, int]] = {}
    digest = hashlib.sha256()
    for f in files:
        text = f.read_text(encoding="utf-8") if f.exists() else None
        if text is None:
            errors.append(RuleError(str(f), 1, 1, None, "file not found"))
            continue
        digest.update(f.name.encode() + b"\0" + text.encode())
        errors.extend(_load_file(f, text, compiled, params, param_pos, seen))
    detectors: dict[str, Detector] = {}
    for name, cls in DETECTORS.items():
        try:
            detectors[name] = cls(**params.get(name, {}))
        except ParameterError as e:
            fpath, line, col = param_pos.get(name, ("?", 1, 1))
            errors.append(RuleError(fpath, line, col, None, f"detectors.{name}: {e}"))
    if errors:
        raise RuleLoadError(errors)
    return RuleSet(compiled, detectors, digest.hexdigest(), [str(f) for f in files])


def _load_file(
    f: Path,
    text: str,
    out: list[CompiledRule],
    params: dict[str, dict[str, Any]],
    param_pos: dict[str, tuple[str, int, int]],
    seen: dict[str, tuple[str, int]],
) -> list[RuleError]:
    errs: list[RuleError] = []
    path = str(f)
    if "\t" in text:
        line = text[: text.index("\t")].count("\n") + 1
        col = text.split("\n")[line - 1].index("\t") + 1
        return [RuleError(path, line, col, None, "a tab character: YAML indentation must use spaces")]
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return [RuleError(path, line, col, None, f"invalid YAML: {e.problem or e.context}")]
    if doc is None:
        return [RuleError(path, 1, 1, None, "the file is empty; expected a mapping with a 'rules:' list")]
    if not isinstance(doc, CommentedMap):
        return [RuleError(path, 1, 1, None, "the top level must be a mapping with a 'rules:' list")]
    plain = _plain(doc)
    try:
        model = RuleFile.model_validate(plain)
    except ValidationError as e:
        for err in e.errors():
            errs.append(_pydantic_error(path, doc, err))
        return errs
    for name, p in model.detectors.items():
        if name not in DETECTORS:
            line, col = _pos(doc, ("detectors", name), key=True)
            errs.append(RuleError(path, line, col, None, f"unknown detector '{name}'{_suggest(name, DETECTORS)}"))
            continue
        params.setdefault(name, {}).update(p)
        param_pos[name] = (path, *_pos(doc, ("detectors", name), key=True))
    for i, rule in enumerate(model.rules):
        line, col = _pos(doc, ("rules", i))
        if rule.id in seen:
            other, oline = seen[rule.id]
            errs.append(RuleError(path, *_pos(doc, ("rules", i, "id")), rule.id,
                                  f"duplicate rule id; first defined at {other}:{oline}"))
            continue
        seen[rule.id] = (path, line)
        bad = False
        for j, det in enumerate(rule.detectors):
            if det not in DETECTORS:
                loc: tuple[Any, ...] = ("rules", i, "detector") if isinstance(rule.detector, str) else (
                    "rules", i, "detector", j)
                errs.append(RuleError(path, *_pos(doc, loc), rule.id,
                                      f"detector: unknown detector '{det}'{_suggest(det, DETECTORS)}"))
                bad = True
        cond = None
        if rule.when:
            try:
                cond = Condition(rule.when)
            except ExpressionError as e:
                wl, wc = _pos(doc, ("rules", i, "when"))
                errs.append(RuleError(path, wl + e.line - 1, (wc + e.col - 1) if e.line == 1 else e.col, rule.id,
                                      f"when: {e}"))
                bad = True
        if not bad:
            src = _rule_source(doc["rules"][i])
            out.append(CompiledRule(rule, cond, f"{path}:{line}", hashlib.sha256(src.encode()).hexdigest()[:16]))
    return errs


def _rule_source(node: Any) -> str:
    import json

    return json.dumps(_plain(node), sort_keys=True, default=str)


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | CommentedSeq):
        return [_plain(v) for v in node]
    return node


def _pos(doc: Any, loc: Iterable[Any], key: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of the deepest node on ``loc`` that exists."""
    node = doc
    line, col = 1, 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            kl, kc, vl, vc = node.lc.key(part) + node.lc.value(part)
            line, col = (kl + 1, kc + 1) if key else (vl + 1, vc + 1)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            il, ic = node.lc.item(part)
            line, col = il + 1, ic + 1
            node = node[part]
        else:
            break
    return line, col


def _suggest(word: str, options: Iterable[str]) -> str:
    close = get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f". Did you mean '{close[0]}'?" if close else ""


def _pydantic_error(path: str, doc: Any, err: Mapping[str, Any]) -> RuleError:
    loc = tuple(err["loc"])
    # pydantic adds the union tag (e.g. 'ticket') after a list index: drop it from the position
    clean = tuple(p for p in loc if not (isinstance(p, str) and p in ("freeze", "ticket", "webhook", "escalate")))
    rule_id = None
    if len(clean) >= 2 and clean[0] == "rules" and isinstance(clean[1], int):
        try:
            rule_id = str(doc["rules"][clean[1]].get("id")) if isinstance(doc["rules"][clean[1]], Mapping) else None
        except (IndexError, KeyError, TypeError):
            rule_id = None
    etype = err["type"]
    is_key = etype == "extra_forbidden"
    line, col = _pos(doc, clean, key=is_key)
    field_path = _field_path(clean[2:] if rule_id is not None else clean)
    msg = _human(err, clean)
    return RuleError(path, line, col, rule_id, f"{field_path}: {msg}" if field_path else msg)


def _field_path(loc: Sequence[Any]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _human(err: Mapping[str, Any], loc: Sequence[Any]) -> str:
    from rules.schema import Notify, Rule, RuleFile, Throttle

    etype = err["type"]
    given = err.get("input")
    if etype == "extra_forbidden":
        name = str(loc[-1])
        owner: Any = {1: RuleFile, 3: Rule}.get(len(loc), None)
        if len(loc) >= 4 and loc[-2] == "notify":
            owner = Notify
        if len(loc) >= 4 and loc[-2] == "throttle":
            owner = Throttle
        known = list(owner.model_fields) if owner else []
        return f"unknown key '{name}'{_suggest(name, known)}"
    if etype == "missing":
        return "this key is required"
    if etype in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        return f"{given!r} is not allowed; expected one of {', '.join(options)}{_suggest(str(given), options)}"
    if etype == "string_pattern_mismatch":
        return f"{given!r} is not a valid id: use lower-case letters, digits, '-', '_' or '.', 2 to 80 characters"
    if etype == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        options = ["freeze", "ticket", "webhook", "escalate"]
        return f"unknown action '{tag}'{_suggest(str(tag), options)} (actions: {', '.join(options)})"
    if etype in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {given!r}"
    if etype in ("int_type", "int_parsing"):
        return f"expected a whole number, got {given!r}"
    if etype in ("list_type",):
        return f"expected a list, got {given!r}"
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {given!r}"
    if etype == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    if etype == "too_short":
        return "must not be empty"
    return str(err["msg"])
