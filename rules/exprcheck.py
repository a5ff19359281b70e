"""A static checker for rule conditions: parses CEL and infers types before a rule goes live.

Why: the CEL binding (``common-expression-language``) compiles without a type checker, so a
misspelt field or ``finding.score == "high"`` would only fail at run time -- where a failing
condition simply never matches, which is the worst kind of silent.  This module parses the same
grammar (CEL spec, ``langdef.md``), knows the shape of the context a condition sees, and reports
unknown fields, unknown functions and operand type mismatches with their offset.

It never decides what runs: the binding parses and evaluates.  Anything :mod:`rules.celparse`
does not understand yields ``None`` (not checked) rather than a false error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from confkit import closest, suggest
from rules.celparse import Node, Parser, Unsupported


@dataclass(frozen=True)
class Ty:
    name: str  # bool int uint double string bytes null timestamp duration type dyn list map obj
    elem: Ty | None = None  # list element, map value
    key: Ty | None = None  # map key
    obj: str | None = None  # object name (fields known)


DYN, BOOL, INT, UINT, DOUBLE = Ty("dyn"), Ty("bool"), Ty("int"), Ty("uint"), Ty("double")
STRING, BYTES, NULL, TYPE = Ty("string"), Ty("bytes"), Ty("null"), Ty("type")
TS, DUR = Ty("timestamp"), Ty("duration")
NUMERIC = {"int", "uint", "double", "number"}  # number: int or double, known only at run time


def list_of(t: Ty) -> Ty:
    return Ty("list", elem=t)


def map_of(k: Ty, v: Ty) -> Ty:
    return Ty("map", elem=v, key=k)


_WORDS = dict(
    bool="true/false",
    int="a whole number",
    uint="an unsigned number",
    double="a decimal number",
    number="a number",
    string="text",
    bytes="bytes",
    null="null",
    timestamp="a timestamp",
    duration="a duration",
    type="a type",
    dyn="a value",
    list="a list",
    map="a map",
)


def describe(t: Ty) -> str:
    return _WORDS.get(t.name, f"the {t.obj}" if t.obj else t.name)


# -- the type checker -----------------------------------------------------------------------------
_CONVERSIONS = dict(
    int=INT,
    uint=UINT,
    double=DOUBLE,
    string=STRING,
    bytes=BYTES,
    dyn=DYN,
    type=TYPE,
    timestamp=TS,
    duration=DUR,
)
_TYPE_NAMES = {"int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"}
_STRING_METHODS = {"startsWith", "endsWith", "contains", "matches"}
_DUR_GETTERS = {"getHours", "getMinutes", "getSeconds", "getMilliseconds"}
_TS_GETTERS = _DUR_GETTERS | {"getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear"}
_MACROS = {"all", "exists", "exists_one", "map", "filter"}
FUNCTIONS = sorted({"size", "has", "matches", *_CONVERSIONS, *_STRING_METHODS, *_TS_GETTERS, *_MACROS})


@dataclass(frozen=True)
class Env:
    """What a condition can see: root variables and the fields of known objects."""

    roots: Mapping[str, Ty]
    objects: Mapping[str, Mapping[str, Ty]]


@dataclass(frozen=True)
class Problem:
    offset: int
    message: str


@dataclass
class CheckResult:
    type: Ty
    problems: list[Problem]
    fields: list[str]  # dotted paths the condition reads, in order of appearance
    tree: Node
    reads: dict[str, frozenset[str] | None] = field(default_factory=dict)  # root -> keys (None: all)


def check(src: str, env: Env) -> CheckResult | None:
    """Type-check ``src``; ``None`` when the text uses syntax this checker does not model."""
    try:
        tree = Parser(src).parse()
    except Unsupported:
        return None
    c = _Checker(src, env)
    t = c.visit(tree, {})
    if t.name not in ("bool", "dyn"):
        msg = f"the condition must be true or false, but it gives {describe(t)}"
        c.problems.append(Problem(tree.pos, msg))
    fields = [f for f in dict.fromkeys(c.fields) if "." in f]
    reads: dict[str, frozenset[str] | None] = {
        root: None if root in c.bare else frozenset(keys) for root, keys in c.reads.items()
    }
    for root in c.bare:
        reads[root] = None
    return CheckResult(t, sorted(c.problems, key=lambda p: p.offset), fields, tree, reads)


class _Checker:
    def __init__(self, src: str, env: Env) -> None:
        self.selected: set[int] = set()  # root identifiers read through one field (projection)
        self.reads: dict[str, set[str]] = {}
        self.bare: set[str] = set()  # roots used as a whole
        self.src = src
        self.env = env
        self.problems: list[Problem] = []
        self.fields: list[str] = []

    def err(self, node: Node, msg: str) -> Ty:
        self.problems.append(Problem(node.at, msg))
        return DYN

    def text(self, node: Node) -> str:
        return self.src[node.pos : node.end]

    def visit(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        return getattr(self, f"v_{n.kind}")(n, scope)  # type: ignore[no-any-return]

    def v_lit(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        return Ty(n.value)

    def v_ident(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        if n.value in scope:
            return scope[n.value]
        if n.value in self.env.roots:
            self.fields.append(n.value)
            if id(n) not in self.selected:
                self.bare.add(n.value)
            return self.env.roots[n.value]
        if n.value in _TYPE_NAMES:
            return TYPE
        known = list(self.env.roots) + list(scope)
        return self.err(
            n,
            f"unknown name '{n.value}'{_hint(n.value, known)} (the condition sees: {', '.join(self.env.roots)})",
        )

    def _read(self, target: Node | None, key: object, scope: Mapping[str, Ty]) -> None:
        """Remember ``root.key`` reads so that evaluation can pass only what a condition uses."""
        if target is None or target.kind != "ident" or not isinstance(key, str):
            return
        if target.value in self.env.roots and target.value not in scope:
            self.selected.add(id(target))
            self.reads.setdefault(target.value, set()).add(key)

    def v_select(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        assert n.target is not None
        self._read(n.target, n.value, scope)
        t = self.visit(n.target, scope)
        return self._field(n, t, n.value)

    def _field(self, n: Node, t: Ty, name: str) -> Ty:
        path = self.text(n)
        if t.obj is not None:
            fields = self.env.objects.get(t.obj, {})
            if name not in fields:
                base = path[: -len(name)] if path.endswith(name) else ""
                close = closest(name, fields, loose=False)
                hint = f". Did you mean '{base}{close}'?" if close else f" (fields: {', '.join(fields)})"
                return self.err(n, f"unknown field '{path}'{hint}")
            self.fields.append(path)
            return fields[name]
        if t.name == "map":
            if t.key is not None and t.key.name not in ("string", "dyn"):
                return self.err(n, f"'{path}': {describe(t.key)} keys cannot be read with '.'")
            self.fields.append(path)
            return t.elem or DYN
        if t.name == "dyn":
            return DYN
        target = self.text(n.target) if n.target else "?"
        return self.err(n, f"'{target}' is {describe(t)}; it has no field '{name}'")

    def v_index(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        assert n.target is not None
        if n.args[0].kind == "lit" and n.args[0].value == "string":
            self._read(n.target, n.args[0].literal, scope)
        t = self.visit(n.target, scope)
        i = self.visit(n.args[0], scope)
        if t.name == "list":
            if i.name not in ("int", "uint", "dyn"):
                return self.err(n.args[0], f"a list index must be a whole number, got {describe(i)}")
            return t.elem or DYN
        if t.name == "map":
            if n.args[0].kind == "lit" and n.args[0].value == "string":
                self.fields.append(f"{self.text(n.target)}.{n.args[0].literal}")
            return t.elem or DYN
        if t.obj is not None and n.args[0].kind == "lit" and n.args[0].value == "string":
            return self._field(n, t, str(n.args[0].literal))
        if t.name == "dyn":
            return DYN
        return self.err(n, f"'{self.text(n.target)}' is {describe(t)}; it cannot be indexed with [...]")

    def v_list(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        types = {self.visit(a, scope) for a in n.args}
        return list_of(types.pop() if len(types) == 1 else DYN)

    def v_map(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        keys = {self.visit(a, scope) for a in n.args[0::2]}
        vals = {self.visit(a, scope) for a in n.args[1::2]}
        return map_of(keys.pop() if len(keys) == 1 else DYN, vals.pop() if len(vals) == 1 else DYN)

    def v_unary(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        t = self.visit(n.args[0], scope)
        if n.value == "!":
            if t.name not in ("bool", "dyn"):
                return self.err(n, f"'!' needs true/false, but '{self.text(n.args[0])}' is {describe(t)}")
            return BOOL
        if t.name not in ("int", "double", "dyn", "duration"):
            return self.err(n, f"'-' needs a number, but '{self.text(n.args[0])}' is {describe(t)}")
        return t

    def v_cond(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        c, a, b = (self.visit(x, scope) for x in n.args)
        if c.name not in ("bool", "dyn"):
            self.err(n.args[0], f"the test before '?' must be true or false, but it is {describe(c)}")
        return a if a == b else DYN

    def v_binary(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        op = n.value
        lt, rt = self.visit(n.args[0], scope), self.visit(n.args[1], scope)
        ltxt, rtxt = self.text(n.args[0]), self.text(n.args[1])
        if "dyn" in (lt.name, rt.name) and op not in ("&&", "||", "in"):
            return BOOL if op in ("==", "!=", "<", "<=", ">", ">=") else DYN
        if op in ("&&", "||"):
            for side, t, txt in (("left", lt, ltxt), ("right", rt, rtxt)):
                if t.name not in ("bool", "dyn"):
                    self.err(
                        n,
                        f"'{op}' needs true/false on both sides, but the {side} side '{txt}' is {describe(t)}",
                    )
            return BOOL
        if op in ("==", "!="):
            if not _comparable(lt, rt):
                self.err(
                    n,
                    f"'{op}' compares {ltxt} ({describe(lt)}) with {rtxt} ({describe(rt)}); "
                    f"they are never equal{_quote_hint(lt, rt, n)}",
                )
            return BOOL
        if op in ("<", "<=", ">", ">="):
            ok = (lt.name in NUMERIC and rt.name in NUMERIC) or (
                lt.name == rt.name and lt.name in ("string", "timestamp", "duration", "bytes", "bool")
            )
            if not ok:
                self.err(
                    n,
                    f"'{op}' cannot compare {ltxt} ({describe(lt)}) with {rtxt} ({describe(rt)})"
                    f"{_quote_hint(lt, rt, n)}",
                )
            return BOOL
        if op == "in":
            if rt.name == "list":
                if rt.elem is not None and lt.name != "dyn" and not _comparable(lt, rt.elem):
                    self.err(n, f"'in' looks for {describe(lt)} in a list of {describe(rt.elem)}")
            elif rt.name == "map":
                if rt.key is not None and lt.name != "dyn" and not _comparable(lt, rt.key):
                    self.err(n, f"'in' looks for {describe(lt)} among {describe(rt.key)} keys")
            elif rt.name != "dyn":
                self.err(n.args[1], f"'in' needs a list or a map on the right, but '{rtxt}' is {describe(rt)}")
            return BOOL
        return self._arith(n, op, lt, rt, ltxt, rtxt)

    def _arith(self, n: Node, op: str, lt: Ty, rt: Ty, ltxt: str, rtxt: str) -> Ty:
        pair = (lt.name, rt.name)
        if "number" in pair and lt.name in NUMERIC and rt.name in NUMERIC:
            return DYN
        if lt.name in NUMERIC and rt.name in NUMERIC and lt.name != rt.name:
            lit = next((a for a in n.args if a.kind == "lit" and a.value == "int"), None)
            fix = "use double(...) or int(...)"
            if lit is not None and DOUBLE in (lt, rt):
                fix = f"write {self.text(lit)}.0"
            return self.err(
                n,
                f"'{op}' cannot mix {ltxt} ({describe(lt)}) and {rtxt} ({describe(rt)}); "
                f"CEL does not convert numbers: {fix}",
            )
        allowed = {
            "+": {"int", "uint", "double", "string", "bytes", "list", "duration"},
            "-": {"int", "uint", "double", "duration"},
            "*": NUMERIC,
            "/": NUMERIC,
            "%": {"int", "uint"},
        }[op]
        if (lt == rt and lt.name in allowed) or (lt.name == rt.name == "list" and op == "+"):
            return lt
        if op == "+" and set(pair) == {"timestamp", "duration"}:
            return TS
        if op == "-" and pair == ("timestamp", "duration"):
            return TS
        if op == "-" and pair == ("timestamp", "timestamp"):
            return DUR
        return self.err(n, f"'{op}' is not defined for {ltxt} ({describe(lt)}) and {rtxt} ({describe(rt)})")

    def v_call(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        fn = n.value
        if n.target is not None and fn in _MACROS:
            return self._macro(n, scope)
        if n.target is None and fn == "has":
            if len(n.args) != 1 or n.args[0].kind != "select":
                return self.err(n, "has() takes one field, like has(finding.evidence.country)")
            sel = n.args[0]
            assert sel.target is not None
            self._read(sel.target, sel.value, scope)
            t = self.visit(sel.target, scope)
            if t.obj is not None:
                self._field(sel, t, sel.value)
                return BOOL
            self.fields.append(self.text(sel))
            return BOOL
        recv = self.visit(n.target, scope) if n.target is not None else None
        args = [self.visit(a, scope) for a in n.args]
        if n.target is None and fn in _CONVERSIONS:
            if len(args) != 1:
                return self.err(n, f"{fn}() takes one argument")
            if fn in ("timestamp", "duration") and args[0].name not in ("string", "dyn", fn):
                return self.err(n, f"{fn}() takes text like {_EXAMPLE[fn]}, got {describe(args[0])}")
            return _CONVERSIONS[fn]
        if fn == "size":
            subject = recv if recv is not None else (args[0] if len(args) == 1 else None)
            if subject is None or (recv is not None and args):
                return self.err(n, "size() takes one list, map or text")
            if subject.name not in ("string", "bytes", "list", "map", "dyn"):
                return self.err(n, f"size() takes a list, a map or text, but got {describe(subject)}")
            return INT
        if fn in _STRING_METHODS:
            if n.target is None:
                if fn != "matches" or len(args) != 2:
                    return self.err(n, f'write {fn}() as a method: text.{fn}("...")')
                recv, args = args[0], args[1:]
            assert recv is not None
            if recv.name not in ("string", "dyn"):
                what = self.text(n.target or n)
                return self.err(n, f"{fn}() works on text, but '{what}' is {describe(recv)}")
            if len(args) != 1 or args[0].name not in ("string", "dyn"):
                got = describe(args[0]) if len(args) == 1 else f"{len(args)} arguments"
                return self.err(n, f"{fn}() takes one text argument, got {got}")
            if fn == "matches" and n.args[-1].kind == "lit":
                self._regex(n.args[-1])
            return BOOL
        if n.target is not None and fn in _TS_GETTERS and recv is not None:
            getters = _DUR_GETTERS if recv.name == "duration" else _TS_GETTERS
            if recv.name not in ("timestamp", "duration", "dyn") or fn not in getters:
                what = self.text(n.target)
                return self.err(n, f"{fn}() works on a timestamp, but '{what}' is {describe(recv)}")
            if args:
                return self.err(n, f"{fn}() takes no argument here (time zones: use the rule's schedule)")
            return INT
        return self.err(
            n, f"unknown function '{fn}'" + (_hint(fn, FUNCTIONS) or f" (supported: {', '.join(FUNCTIONS)})")
        )

    def _macro(self, n: Node, scope: Mapping[str, Ty]) -> Ty:
        assert n.target is not None
        recv = self.visit(n.target, scope)
        fn = n.value
        if len(n.args) not in (2, 3) or n.args[0].kind != "ident" or (len(n.args) == 3 and fn != "map"):
            return self.err(n, f"write {fn}() as list.{fn}(x, <condition on x>)")
        if recv.name == "list":
            var_t = recv.elem or DYN
        elif recv.name == "map":
            var_t = recv.key or DYN
        elif recv.name == "dyn":
            var_t = DYN
        else:
            what = self.text(n.target)
            return self.err(n, f"{fn}() works on a list or a map, but '{what}' is {describe(recv)}")
        inner = {**scope, n.args[0].value: var_t}
        body = [self.visit(a, inner) for a in n.args[1:]]
        preds = body[:-1] if fn == "map" else body
        for a, t in zip(n.args[1:], preds, strict=False):
            if t.name not in ("bool", "dyn"):
                self.err(a, f"the condition inside {fn}() must be true or false, but it is {describe(t)}")
        if fn == "map":
            return list_of(body[-1])
        if fn == "filter":
            return list_of(var_t)
        return BOOL

    def _regex(self, lit: Node) -> None:
        if lit.value != "string":
            return
        import cel

        try:
            cel.evaluate('"".matches(r)', {"r": lit.literal})
        except Exception as e:  # the binding's own regex engine decides
            why = [ln.removeprefix("error:").strip() for ln in str(e).splitlines() if ln.startswith("error:")]
            reason = why[0].split(". Check function")[0] if why else "the regex engine refused it"
            self.err(lit, f"invalid regular expression {lit.literal!r}: {reason}")


_EXAMPLE = {"timestamp": '"2024-01-31T00:00:00Z"', "duration": '"90m"'}


def _comparable(a: Ty, b: Ty) -> bool:
    if "dyn" in (a.name, b.name) or "null" in (a.name, b.name):
        return True
    if a.name in NUMERIC and b.name in NUMERIC:
        return True
    if a.name != b.name:
        return False
    if a.name == "list":
        return _comparable(a.elem or DYN, b.elem or DYN)
    return True


def _quote_hint(a: Ty, b: Ty, n: Node) -> str:
    for arg in n.args:
        if arg.kind == "lit" and arg.value == "string" and re.fullmatch(r"-?\d+(\.\d+)?", str(arg.literal)):
            return f"; write the number without quotes: {arg.literal}"
    return ""


def _hint(word: str, options: list[str]) -> str:
    return suggest(word, options, loose=False)
