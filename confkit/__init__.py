"""Configuration errors people can act on: YAML and pydantic problems as ``path:line:col`` lines.

Pydantic, ruamel.yaml and the CEL parser each speak their own dialect ("Input should be a valid
boolean", "found character '\\t' that cannot start any token").  This one module -- used by
the rule loader, the ticket policy, the settings and the channel registry -- translates them into
one short sentence that says what to change, with a "did you mean" when a close spelling exists,
placed at the line and column of the YAML node (Prometheus' ``rulefmt``, RenderCV).

It sits below every other package (``lint-imports``): it knows YAML and pydantic, nothing of Vigil.

    load_yaml          text -> round-trip document with positions, or ConfigFileError
    issues             a pydantic ValidationError -> [Issue] at the document's positions
    humanise           one pydantic error -> one sentence
    closest, suggest   the option a misspelt word was meant to be; ". Did you mean 'x'?"
    locate             a pydantic location -> (line, col) in the document
    recover            text -> the document without its broken entries, and every syntax
                       problem at the line to fix (:mod:`confkit.recover`)
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean


@dataclass(frozen=True)
class Issue:
    """One problem in a configuration file: ``path:line:col: where: message`` (line 0: the whole file)."""

    path: str
    line: int
    col: int
    where: str
    message: str

    def __str__(self) -> str:
        at = f"{self.path}:{self.line}:{self.col}" if self.line else self.path
        return ": ".join(x for x in (at, self.where, self.message) if x)


class ConfigFileError(ValueError):
    """A configuration file cannot be used; ``issues`` lists every problem, each on its own line."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = list(issues)


def read_yaml(path: str | Path, *, what: str = "a mapping") -> Any:
    """Read and parse a YAML file (round trip, so nodes know their positions); one-line errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError([Issue(str(p), 1, 1, "", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigFileError([Issue(str(p), 1, 1, "", "is a directory, not a file")]) from None
    except UnicodeDecodeError as e:
        raise ConfigFileError([Issue(str(p), 1, 1, "", f"not UTF-8 text (byte {e.start})")]) from None
    return load_yaml(text, str(p), what=what)


def load_yaml(text: str, path: str, *, what: str = "a mapping") -> Any:
    """Parse YAML text with positions; ``what`` names the expected top level ("a mapping of settings")."""
    from ruamel.yaml import YAML

    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        # every syntax problem, each at the line to fix (the file is refused all the same)
        found = recover(text).problems or [yaml_message(e)]
        raise ConfigFileError([Issue(path, line, col, "", msg) for line, col, msg in found]) from None
    except YAMLError as e:
        raise ConfigFileError([Issue(path, 1, 1, "", f"invalid YAML: {e}")]) from None
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigFileError([Issue(path, 1, 1, "", f"the top level must be {what}")])
    return doc


def issues(e: ValidationError, root: type[BaseModel], *, doc: Any = None, path: str = "",
           prefix: Sequence[Any] = (), union_tags: Sequence[str] = (), noun: str = "key",
           exact: bool = False) -> list[Issue]:
    """Every error of a validation, in words, at its node in ``doc`` (line 0 when it is not there).

    ``prefix`` is where ``root`` sits in the document (``("channels", "sms")`` for one channel's
    section of the settings file).  A missing key is placed at the mapping that lacks it.  With
    ``exact``, a value is placed only if the document holds it (settings: the value may have come
    from the environment instead); otherwise at the deepest node on its path.
    """
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        full = (*prefix, *loc)
        line = col = 0
        if doc is not None and err["type"] == "missing":
            line, col, walked = locate(doc, full[:-1], union_tags=union_tags)
            if exact and len(walked) < len(full) - 1:
                line = col = 0
        elif doc is not None:
            line, col, walked = locate(doc, full, key=err["type"] == "extra_forbidden", union_tags=union_tags)
            if (not walked and full) or (exact and len(walked) < len([p for p in full if p not in union_tags])):
                line = col = 0
            elif exact and "input" in err and err["type"] != "extra_forbidden" \
                    and _plain(_node_at(doc, walked)) != _plain(err["input"]):
                line = col = 0  # the file has this key, but the value that failed came from elsewhere
        msg = humanise(err, loc, root, union_tags=union_tags, noun=noun)
        out.append(Issue(path, line, col, field_path(full), msg))
    return out


def closest(word: object, options: Iterable[str], *, loose: bool = True) -> str | None:
    """The option ``word`` was most likely meant to be (difflib ratio >= 0.6), or None.

    ``loose`` also accepts the same word in another case (first) and an abbreviation of an
    option of at least 3 characters (last) -- what rule and settings keys want; a condition's
    field names do without.  The one place Vigil guesses a spelling.
    """
    opts = list(options)
    w = str(word)
    close = [o for o in opts if o.lower() == w.lower()] if loose else []
    close = close or get_close_matches(w, opts, n=1, cutoff=0.6)
    if not close and loose:
        close = [o for o in opts if len(o) >= 3 and w.lower().startswith(o.lower())]
    return close[0] if close else None


def suggest(word: object, options: Iterable[str], *, loose: bool = True) -> str:
    """``". Did you mean 'x'?"`` for the closest option (spelling, case, or an abbreviation), or ``""``."""
    close = closest(word, options, loose=loose)
    return f". Did you mean '{close}'?" if close else ""


def show(v: Any) -> str:
    """A value as the person wrote it in YAML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null (empty)"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, Mapping | list):
        text = json.dumps(_plain(v), default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(v)


def _plain(node: Any) -> Any:
    """Plain Python values: ruamel wraps anchored or specially written scalars (``&x true``, ``0x10``)
    in subclasses that strict validation would otherwise refuse."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    if isinstance(node, TaggedScalar):
        return str(node.value)
    for kind in (int, float, str):
        if isinstance(node, kind) and type(node) is not kind:
            return kind(node)
    return node


plain = _plain


# -- positions ------------------------------------------------------------------------------------
def locate(doc: Any, loc: Iterable[Any], key: bool = False, *, union_tags: Iterable[str] = ()
           ) -> tuple[int, int, list[Any]]:
    """Line and column (1-based) of the deepest node on ``loc`` that exists, and the parts walked.

    Union tags (a rule action's ``ticket``) that pydantic puts in a location are skipped when the
    YAML used the tagged form ``{type: ticket, ...}`` rather than the shorthand ``{ticket: {...}}``.
    """
    tags = set(union_tags)
    node = doc
    line, col = 1, 1
    walked: list[Any] = []
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            kl, kc = node.lc.key(part)
            vl, vc = node.lc.value(part)
            line, col = (kl + 1, kc + 1) if key else (vl + 1, vc + 1)
            node = node[part]
            walked.append(part)
        elif isinstance(node, CommentedMap) and part in tags:
            continue
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            il, ic = node.lc.item(part)
            line, col = il + 1, ic + 1
            node = node[part]
            walked.append(part)
        else:
            break
    return line, col, walked


def _node_at(doc: Any, walked: Sequence[Any]) -> Any:
    node = doc
    for part in walked:
        node = node[part]
    return node


def field_path(loc: Sequence[Any]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def scalar_position(text: str, line: int, col: int, value: str, offset: int) -> tuple[int, int]:
    """Where character ``offset`` of a scalar's value sits in the file (1-based line and column).

    ``line``/``col`` (1-based) is where the scalar starts: an opening quote, a block indicator
    (``|``, ``>``) or the first character of a plain scalar.  Quotes, escapes, indentation and
    folded line breaks are skipped by aligning the value's characters with the file's.
    """
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    i = starts[line - 1] + col - 1 if line - 1 < len(starts) else len(text)
    if i < len(text) and text[i] in "|>":
        nl = text.find("\n", i)
        i = len(text) if nl < 0 else nl + 1
    elif i < len(text) and text[i] in "'\"":
        i += 1
    j = 0
    while j < offset and i < len(text):
        if text[i] == value[j]:
            i += 1
            j += 1
        elif value[j] in " \n\t":
            j += 1
        else:
            i += 1
    while i < len(text) and offset < len(value) and text[i] != value[offset] and text[i] in " \n\t\\":
        i += 1
    ln = max(k for k, s in enumerate(starts) if s <= i) if i < len(text) else len(starts) - 1
    return ln + 1, i - starts[ln] + 1


# -- YAML -----------------------------------------------------------------------------------------
def yaml_message(e: MarkedYAMLError) -> tuple[int, int, str]:
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = str(e.problem or "")
    context = str(e.context or "")
    cm = e.context_mark
    where = f"line {cm.line + 1}, column {cm.column + 1}" if cm else "above"
    if "'\\t'" in problem:
        return line, col, "a tab character: YAML indentation and spacing must use spaces"
    if problem.startswith("found duplicate key"):
        name = problem.split('"')[1] if '"' in problem else "?"
        return line, col, f"the key '{name}' appears twice in the same mapping; keep one"
    if "scanning a quoted scalar" in context:
        return (cm.line + 1, cm.column + 1, "a quoted text is not closed") if cm else (line, col, problem)
    if "expected a single document" in context:
        return line, col, "a second YAML document ('---'): put each rule file's content in one document"
    if problem == "mapping values are not allowed here":
        return line, col, "an unexpected ':'; if the value contains ': ' put the whole value in quotes"
    if "flow mapping" in context or "flow sequence" in context:
        bracket = "{" if "mapping" in context else "["
        return line, col, f"the '{bracket}' opened at {where} is not closed"
    if "block collection" in context or "block mapping" in context:
        return (
            line,
            col,
            "the indentation does not line up with the lines above; check the spaces before this line",
        )
    if "while scanning an alias" in context or "while scanning an anchor" in context:
        return line, col, f"a '*' or '&' starts a YAML alias here; put the value in quotes ({problem})"
    if problem.startswith("found undefined alias"):
        return line, col, f"{problem}; put a value that starts with '*' in quotes"
    text = problem + (f" ({context})" if context else "")
    return line, col, f"invalid YAML: {text}"


# -- pydantic -------------------------------------------------------------------------------------
def _unwrap(t: Any) -> Any:
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(t) if a is not type(None)]
            if len(args) == 1:
                t = args[0]
            else:
                return tuple(args)
        else:
            return t


def model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model that owns the mapping at ``loc`` (for "did you mean" on an unknown key)."""
    t: Any = root
    for part in loc:
        t = _unwrap(t)
        if typing.get_origin(t) is dict:  # a mapping of named sections: the key is any name
            t = typing.get_args(t)[1]
            continue
        if isinstance(part, int):
            if typing.get_origin(t) is not list:
                return None
            t = typing.get_args(t)[0]
        elif isinstance(t, tuple):  # a union: pick the member whose ``type`` tag is ``part``
            t = next(
                (
                    m
                    for m in t
                    if isinstance(m, type)
                    and issubclass(m, BaseModel)
                    and m.model_fields.get("type")
                    and m.model_fields["type"].default == part
                ),
                None,
            )
            if t is None:
                return None
        elif isinstance(t, type) and issubclass(t, BaseModel) and part in t.model_fields:
            t = t.model_fields[part].annotation
        else:
            return None
    t = _unwrap(t)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


_TYPES = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}


def humanise(err: Mapping[str, Any], loc: Sequence[Any], root: type[BaseModel], *,
             union_tags: Sequence[str] = (), names: Mapping[str, str] | None = None, noun: str = "key") -> str:
    """One pydantic error in words; ``loc`` is relative to ``root``.

    ``union_tags`` are the tags of a tagged union at this place (rule actions: ``freeze``,
    ``ticket``, ...); ``names`` says, per field, what a pattern-checked name looks like; ``noun``
    is what a mapping key is called here ("key" in rule files, "setting" in the settings).
    """
    etype = err["type"]
    given = err.get("input")
    ctx = err.get("ctx") or {}
    last = loc[-1] if loc else ""
    if etype == "extra_forbidden":
        owner = model_at(root, loc[:-1])
        known = [k for k in (owner.model_fields if owner else ()) if k != "type"]
        hint = suggest(last, known)
        return f"unknown {noun} '{last}'{hint}" + (
            "" if hint or not known else f" (allowed: {', '.join(known)})"
        )
    if etype == "missing":
        return f"the required key '{last}' is missing"
    if etype in ("literal_error", "enum"):
        options = [o.strip().strip("'") for o in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        options = [o for o in options if o]
        if last == "version":
            return f"{show(given)} is not supported; write version: 1"
        return f"{show(given)} is not one of {', '.join(options)}{suggest(given, options)}"
    if etype == "string_pattern_mismatch":
        what = (names or {}).get(str(last), "a name: lower-case letters, digits, '-', '_' or '.'")
        return f"{show(given)} is not {what}"
    if etype == "union_tag_invalid":
        tag = ctx.get("tag")
        return f"unknown action {show(tag)}{suggest(tag, union_tags)} (actions: {', '.join(union_tags)})"
    if etype == "union_tag_not_found":
        return f"an action is one of {', '.join(union_tags)}, or a mapping with one of them as its only key"
    if etype in _TYPES:
        tip = ""
        if (
            etype.startswith("bool")
            and isinstance(given, str)
            and given.lower() in ("yes", "no", "on", "off")
        ):
            tip = " (YAML 1.2 reads yes/no/on/off as text)"
        elif isinstance(given, str) and etype.startswith(("int", "float")):
            tip = " (remove the quotes)" if _numeric(given) else ""
        elif etype == "list_type" and isinstance(given, str):
            tip = f"; write [{given}]"
        elif etype == "list_type" and isinstance(given, Mapping) and last == "rules":
            tip = "; start each rule with '- '"
        return f"expected {_TYPES[etype]}, got {show(given)}{tip}"
    if etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[
            etype
        ]
        bound = next(iter(ctx.values()), "?")
        return f"must be {sign} {bound}, got {show(given)}"
    if etype == "too_short":
        return "must not be empty" if not given else f"needs at least {ctx.get('min_length', 1)} item(s)"
    if etype in ("value_error", "assertion_error"):
        return str(ctx.get("error", err.get("msg", "")))
    msg = str(err.get("msg", etype))
    return msg.replace("Input should be", "expected")


def _numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


from confkit.recover import Recovered as Recovered  # noqa: E402  (it uses yaml_message above)
from confkit.recover import diagnose as diagnose  # noqa: E402
from confkit.recover import recover as recover  # noqa: E402
