"""A parser for rule conditions (the CEL grammar of the spec's ``langdef.md``), for checking and explaining.

The CEL binding parses and evaluates conditions; this tree exists only so that
:mod:`rules.exprcheck` can infer types and :mod:`rules.explain` can say a condition in words.
Syntax it does not model raises :class:`Unsupported` -- never a false error for valid CEL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tok:
    kind: str  # int uint double string bytes ident op eof
    text: str
    pos: int
    value: Any = None


@dataclass
class Node:
    kind: str  # lit ident select index call list map unary binary cond
    pos: int
    end: int
    value: Any = None  # literal type / identifier / field / operator / function name
    args: list[Node] = field(default_factory=list)
    target: Node | None = None
    literal: Any = None
    at: int = -1  # where an error about this node points: the operator or the field name

    def __post_init__(self) -> None:
        if self.at < 0:
            self.at = self.pos


class Unsupported(Exception):
    """The text uses syntax this checker does not model (it may still be valid CEL)."""


_TOKEN = re.compile(
    r"""(?P<ws>\s+|//[^\n]*)
    |(?P<string>(?:[rRbB]{1,2})?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    |(?P<num>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
    |(?P<ident>[A-Za-z_]\w*)
    |(?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-*/%?:.,()\[\]{}])""",
    re.VERBOSE,
)


def tokenize(src: str) -> list[Tok]:
    out: list[Tok] = []
    i = 0
    while i < len(src):
        m = _TOKEN.match(src, i)
        if not m:
            raise Unsupported(f"unexpected character at {i}")
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "string":
            prefix = text[: len(text) - len(text.lstrip("rRbB"))].lower()
            value = _unquote(text[len(prefix) :], "r" in prefix)
            out.append(Tok("bytes" if "b" in prefix else "string", text, i, value))
        elif kind == "num":
            t = text.lower()
            if t.endswith("u"):
                out.append(Tok("uint", text, i))
            elif t.startswith("0x") or re.fullmatch(r"\d+", t):
                out.append(Tok("int", text, i))
            else:
                out.append(Tok("double", text, i))
        elif kind == "ident":
            out.append(Tok("op" if text == "in" else "ident", text, i))
        elif kind == "op":
            out.append(Tok("op", text, i))
        i = m.end()
    out.append(Tok("eof", "", len(src)))
    return out


def _unquote(body: str, raw: bool) -> str:
    q = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[q:-q]
    if raw:
        return inner
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), inner)


_BINARY = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]


class Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = tokenize(src)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self, text: str | None = None) -> Tok:
        t = self.toks[self.i]
        if text is not None and t.text != text:
            raise Unsupported(f"expected {text!r} at {t.pos}")
        self.i += 1
        return t

    def parse(self) -> Node:
        n = self.expr()
        if self.peek().kind != "eof":
            raise Unsupported("trailing text")
        return n

    def expr(self) -> Node:
        c = self.binary(0)
        if self.peek().text == "?":
            self.take("?")
            a = self.binary(0)
            self.take(":")
            b = self.expr()
            return Node("cond", c.pos, b.end, args=[c, a, b])
        return c

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek().kind == "op" and self.peek().text in _BINARY[level]:
            tok = self.take()
            right = self.binary(level + 1)
            left = Node("binary", left.pos, right.end, value=tok.text, args=[left, right], at=tok.pos)
        return left

    def unary(self) -> Node:
        t = self.peek()
        if t.text in ("!", "-") and t.kind == "op":
            self.take()
            x = self.unary()
            return Node("unary", t.pos, x.end, value=t.text, args=[x])
        return self.member()

    def member(self) -> Node:
        n = self.primary()
        while True:
            t = self.peek()
            if t.text == ".":
                self.take()
                name = self.take()
                if name.kind != "ident":
                    raise Unsupported("field name expected")
                if self.peek().text == "(":
                    args, end = self.call_args()
                    n = Node("call", n.pos, end, value=name.text, args=args, target=n, at=name.pos)
                else:
                    n = Node(
                        "select", n.pos, name.pos + len(name.text), value=name.text, target=n, at=name.pos
                    )
            elif t.text == "[":
                self.take()
                idx = self.expr()
                end = self.take("]").pos + 1
                n = Node("index", n.pos, end, args=[idx], target=n)
            else:
                return n

    def call_args(self) -> tuple[list[Node], int]:
        self.take("(")
        args: list[Node] = []
        while self.peek().text != ")":
            args.append(self.expr())
            if self.peek().text == ",":
                self.take()
        return args, self.take(")").pos + 1

    def primary(self) -> Node:
        t = self.take()
        if t.kind in ("int", "uint", "double", "string", "bytes"):
            return Node("lit", t.pos, t.pos + len(t.text), value=t.kind, literal=t.value)
        if t.kind == "ident":
            if t.text in ("true", "false"):
                return Node("lit", t.pos, t.pos + len(t.text), value="bool", literal=t.text == "true")
            if t.text == "null":
                return Node("lit", t.pos, t.pos + len(t.text), value="null")
            if self.peek().text == "(":
                args, end = self.call_args()
                return Node("call", t.pos, end, value=t.text, args=args)
            return Node("ident", t.pos, t.pos + len(t.text), value=t.text)
        if t.text == "(":
            n = self.expr()
            end = self.take(")").pos + 1
            return Node(n.kind, t.pos, end, n.value, n.args, n.target, n.literal, n.at)
        if t.text == "[":
            items: list[Node] = []
            while self.peek().text != "]":
                items.append(self.expr())
                if self.peek().text == ",":
                    self.take()
            return Node("list", t.pos, self.take("]").pos + 1, args=items)
        if t.text == "{":
            items = []
            while self.peek().text != "}":
                items.append(self.expr())
                self.take(":")
                items.append(self.expr())
                if self.peek().text == ",":
                    self.take()
            return Node("map", t.pos, self.take("}").pos + 1, args=items)
        raise Unsupported(f"unexpected {t.text!r}")
