"""Rule conditions in CEL (common-expression-language), compiled and type-checked once at load.

Nothing from YAML reaches ``eval`` or ``exec``: CEL is not Turing-complete and the compiled
program only sees the plain dict context built for each finding.  The binding reports syntax
errors with ``line:col``; :mod:`rules.exprcheck` adds what the binding does not check -- unknown
fields and functions, and operand types -- so that a rule that could never match is refused at
load instead of silently never firing.

The context a condition sees::

    finding   id, detector, family, kind, score, account_id, ts (timestamp), event_ids, evidence
    account   account_id, tier, locale, timezone, age_days (-1 unknown), status, country
    profile   the detector's per-account baseline (open map; absent keys read as missing)
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Mapping
from typing import Any

from rules.celparse import Node
from rules.exprcheck import (
    BOOL,
    DOUBLE,
    DYN,
    INT,
    STRING,
    TS,
    Env,
    Ty,
    check,
    list_of,
    map_of,
)

FINDING_FIELDS: dict[str, Ty] = {
    "id": STRING,
    "detector": STRING,
    "family": STRING,
    "kind": STRING,
    "score": DOUBLE,
    "account_id": STRING,
    "ts": TS,
    "event_ids": list_of(STRING),
    "evidence": map_of(STRING, DYN),
}
ACCOUNT_FIELDS: dict[str, Ty] = {
    "account_id": STRING,
    "tier": STRING,
    "locale": STRING,
    "timezone": STRING,
    "age_days": INT,
    "status": STRING,
    "country": STRING,
}
CONTEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "finding": tuple(FINDING_FIELDS),
    "account": tuple(ACCOUNT_FIELDS),
    "profile": (),
}
OPEN_FIELDS = {("finding", "evidence"), ("profile", "")}


def _import_cel() -> types.ModuleType:
    """``import cel`` without the package's command-line tool, which it imports eagerly (rich,
    prompt_toolkit, typer: a third of a second at every start-up); ``import cel.cli`` still works."""
    if "cel" in sys.modules:
        return sys.modules["cel"]
    stub = types.ModuleType("cel.cli")
    sys.modules["cel.cli"] = stub
    try:
        import cel
    finally:
        if sys.modules.get("cel.cli") is stub:
            del sys.modules["cel.cli"]
    if getattr(cel, "cli", None) is stub:
        del cel.cli
    return cel


cel = _import_cel()

_EVIDENCE_TYPES: dict[Any, Ty] = {
    str: STRING,
    "string": STRING,
    "text": STRING,
    bool: BOOL,
    "bool": BOOL,
    int: Ty("number"),
    float: Ty("number"),
    "int": Ty("number"),
    "float": Ty("number"),
    "number": Ty("number"),
    list: list_of(DYN),
    "list": list_of(DYN),
    dict: map_of(STRING, DYN),
    "map": map_of(STRING, DYN),
}


class ExpressionError(ValueError):
    """A condition that does not compile or type-check; ``problems`` holds every (line, col, message)."""

    def __init__(self, problems: list[tuple[int, int, str]]) -> None:
        super().__init__(problems[0][2])
        self.problems = problems
        self.line, self.col = problems[0][0], problems[0][1]


_POS = re.compile(r"<input>:(\d+):(\d+): (.*)")


def environment(evidence: Mapping[str, Any] | None = None) -> Env:
    """The checking environment; ``evidence`` (field -> type) closes ``finding.evidence``."""
    objects: dict[str, Mapping[str, Ty]] = {"finding": dict(FINDING_FIELDS), "account": ACCOUNT_FIELDS}
    if evidence is not None:
        objects["evidence"] = {k: _EVIDENCE_TYPES.get(v, DYN) for k, v in evidence.items()}
        objects["finding"] = {**FINDING_FIELDS, "evidence": Ty("obj", obj="evidence")}
    roots = {
        "finding": Ty("obj", obj="finding"),
        "account": Ty("obj", obj="account"),
        "profile": map_of(STRING, DYN),
    }
    return Env(roots, objects)


class Condition:
    """A compiled condition; calling it on a context returns True only when it holds."""

    def __init__(self, source: str, evidence: Mapping[str, Any] | None = None) -> None:
        self.source = source
        try:
            self.program = cel.compile(source)
        except ValueError as e:
            text = str(e)
            m = _POS.search(text)
            if m:
                msg = _syntax_message(m.group(3).strip())
                raise ExpressionError([(int(m.group(1)), int(m.group(2)), msg)]) from None
            raise ExpressionError([(1, 1, text.splitlines()[0])]) from None
        result = check(source, environment(evidence))
        self.fields: list[str] = result.fields if result else []
        self.tree: Node | None = result.tree if result else None
        # what evaluation must pass (None: everything, when the checker could not read the text)
        self.reads: dict[str, frozenset[str] | None] | None = result.reads if result else None
        if result and result.problems:
            raise ExpressionError([(*_line_col(source, p.offset), p.message) for p in result.problems])

    def __call__(self, context: Mapping[str, Any]) -> bool:
        return self.test(context)[0]

    def test(self, context: Mapping[str, Any]) -> tuple[bool, str | None]:
        """``(holds, error)``: a run-time error (a field absent from this finding) means "does not hold"."""
        try:
            ctx = context if isinstance(context, dict) else dict(context)
            return self.program.execute(ctx) is True, None
        except (KeyError, ValueError, TypeError, RuntimeError, ZeroDivisionError) as e:
            return False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _syntax_message(text: str) -> str:
    """The parser's wording, with ANTLR's token soup turned into something a person can act on."""
    m = re.match(r"Syntax error: token recognition error at: '(.*)'$", text)
    if m:
        bad = m.group(1)
        if bad[:1] in ("'", '"'):
            return "syntax error: a quoted text is not closed"
        for op, fix in (("=", "use == to compare"), ("&", "use && for 'and'"), ("|", "use || for 'or'")):
            if bad.startswith(op):
                return f"syntax error: '{op}' is not an operator; {fix}"
        return f"syntax error: '{bad.strip()}' is not part of the condition language"
    m = re.match(r"Syntax error: (?:mismatched|extraneous) input '(.*?)' expecting (.*)", text)
    if m:
        got = m.group(1)
        words = {"and": "&&", "or": "||", "not": "!"}
        if got in words:
            return f"syntax error: '{got}' is not an operator; use {words[got]}"
        if got == "<EOF>":
            return "syntax error: the condition ends too early; an operand or a closing bracket is missing"
        return f"syntax error: unexpected '{got}'"
    m = re.match(r"Syntax error: missing '(.*?)' at '(.*?)'", text)
    if m:
        return f"syntax error: a '{m.group(1)}' is missing"
    text = text.removeprefix("Syntax error: ")
    return "syntax error: " + text


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col
