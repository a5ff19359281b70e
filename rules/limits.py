"""Limits that keep a rule file from hanging or crashing the engine.

A rule file comes from a person with write access to a Git repository, not from the operator's
root shell, so reading it must be bounded whatever it holds:

* the file: at most :data:`MAX_FILE_BYTES`, :data:`MAX_YAML_NODES` nodes *counting what every
  alias expands to* (an alias bomb makes 387 million nodes of a hundred lines; ordinary anchors
  such as a shared ``notify:`` block stay allowed) and :data:`MAX_YAML_DEPTH` levels of nesting.
  These are checked on ruamel's *event stream* -- a flat, iterative pass -- before anything
  builds a tree, so a hostile file costs one linear scan;
* a condition: at most :data:`MAX_CONDITION_CHARS` characters, :data:`MAX_NESTING` levels of
  brackets and prefix operators (``!!!!…`` is nesting too), :data:`MAX_LIST_ITEMS` items in a
  list literal, :data:`MAX_OPERATORS` binary operators and :data:`MAX_MACRO_NESTING`
  comprehensions (``all``, ``exists``, ``map``, …) inside one another -- checked on the token
  stream before any recursive parser or the CEL compiler sees the text;
* an evaluation budget: the condition's worst-case cost (nodes visited, a comprehension costing
  its body once per element) must stay under :data:`COST_BUDGET`, with lists from the data
  assumed :data:`DATA_LIST_SIZE` long; and at run time a condition that takes longer than
  :data:`EVAL_BUDGET_SECONDS` of its thread's CPU time on one finding (timed again by CPU when
  the clock says it overran, so a loaded machine changes nothing) is switched off for the rest
  of the batch.

Everything here is pure and raises nothing: each check returns ``(line, col, message)`` problems.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from rules.celparse import Node, Tok, Unsupported, tokenize

MAX_FILE_BYTES = 512 * 1024
MAX_YAML_NODES = 50_000
MAX_YAML_DEPTH = 64
MAX_CONDITION_CHARS = 2_000
MAX_NESTING = 32
MAX_OPERATORS = 160
MAX_LIST_ITEMS = 256
MAX_MACRO_NESTING = 2
COST_BUDGET = 200_000
DATA_LIST_SIZE = 1_000
EVAL_BUDGET_SECONDS = 0.05
_BINARY_OPS = frozenset({"&&", "||", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%"})
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

Problem = tuple[int, int, str]


def file_problems(data: bytes) -> list[Problem]:
    """Size first (before decoding): a file over the cap is not read further."""
    if len(data) > MAX_FILE_BYTES:
        return [(1, 1, f"the file is {len(data):,} bytes; a rule file may hold at most {MAX_FILE_BYTES:,} "
                       "bytes: split it into several files")]
    return []


def yaml_problems(text: str) -> list[Problem]:
    """Node count (aliases expanded) and depth, from the event stream (no tree is built).

    YAML syntax errors are left to the full load, which words them; this pass stops at the
    first one it meets.  The loader does not call this: it runs :class:`YamlLimits` on the
    events of the load itself (``confkit.recover(event_guard=...)``), one parse, not two.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    check = YamlLimits()
    try:
        for ev in YAML(typ="rt").parse(io.StringIO(text)):
            problem = check(ev)
            if problem is not None:
                return [problem]
    except YAMLError:
        pass
    return []


class YamlLimits:
    """The limits of :func:`yaml_problems`, judged one parser event at a time.

    Called with each event in stream order, it returns the problem at the first event over a
    limit (and ``None`` before): a caller that stops there has built nothing bigger than what
    was counted.  One instance per pass over a text.
    """

    def __init__(self) -> None:
        from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

        self._types = (AliasEvent, NodeEvent, CollectionStartEvent, CollectionEndEvent)
        self.expanded = 0
        self.depth = 0
        self.sizes: dict[str, int] = {}  # anchor -> nodes it stands for (aliases inside it expanded)
        self.open: list[tuple[str | None, int]] = []  # collections being read: (anchor, count before them)

    def __call__(self, ev: Any) -> Problem | None:
        alias_t, node_t, start_t, end_t = self._types
        if isinstance(ev, alias_t):
            self.expanded += self.sizes.get(str(ev.anchor), 1)
        elif isinstance(ev, node_t):
            self.expanded += 1
            if isinstance(ev, start_t):
                self.open.append((ev.anchor, self.expanded - 1))
                self.depth += 1
                if self.depth > MAX_YAML_DEPTH:
                    return (*_pos(ev), f"nested more than {MAX_YAML_DEPTH} levels deep")
            elif ev.anchor:
                self.sizes[str(ev.anchor)] = 1
        elif isinstance(ev, end_t) and self.open:
            anchor, before = self.open.pop()
            self.depth -= 1
            if anchor:
                self.sizes[str(anchor)] = self.expanded - before
        if self.expanded > MAX_YAML_NODES:
            what = " once its aliases are expanded" if self.sizes else ""
            return (*_pos(ev), f"the file holds more than {MAX_YAML_NODES:,} YAML nodes{what}; "
                               "split it (or write out what the aliases repeat)")
        return None


def _pos(ev: Any) -> tuple[int, int]:
    return (ev.start_mark.line + 1, ev.start_mark.column + 1) if ev.start_mark else (1, 1)


def condition_problems(source: str) -> list[tuple[int, str]]:
    """``(offset, message)`` for a condition over the limits; empty when it may be compiled."""
    if len(source) > MAX_CONDITION_CHARS:
        return [(0, f"the condition is {len(source):,} characters; at most {MAX_CONDITION_CHARS:,} are "
                    "allowed: split the rule or move the logic into a detector parameter")]
    try:
        toks = tokenize(source)
    except Unsupported:
        return []  # not ours to judge: the CEL compiler words the syntax error
    return _token_problems(toks)


def _token_problems(toks: list[Tok]) -> list[tuple[int, str]]:
    # a stack of open brackets; each entry: (closing text, items so far, is a macro call)
    stack: list[list[Any]] = []
    unary_run = 0
    ternaries = 0  # 'a ? b : c ? …' nests to the right
    operators = 0  # 'a + a + a …' is a chain as deep as it is long
    macros_open = 0
    prev: Tok | None = None
    for i, t in enumerate(toks):
        if t.kind == "op" and t.text in ("!", "-") and (prev is None or _operand_expected(prev)):
            unary_run += 1
        elif t.kind != "eof":
            unary_run = 0
        if t.kind == "op" and t.text == "?":
            ternaries += 1
        if t.kind == "op" and t.text in _BINARY_OPS and unary_run == 0:
            operators += 1
            if operators > MAX_OPERATORS:
                return [(t.pos, f"the condition has more than {MAX_OPERATORS} operators; split the rule")]
        if len(stack) + unary_run + ternaries > MAX_NESTING:
            return [(t.pos, f"the condition is nested more than {MAX_NESTING} levels deep "
                            "(brackets, prefix operators such as '!', and '? :')")]
        if t.kind == "op" and t.text in ("(", "[", "{"):
            is_macro = (t.text == "(" and prev is not None and prev.kind == "ident" and prev.text in MACROS
                        and i >= 2 and toks[i - 2].text == ".")
            stack.append([{"(": ")", "[": "]", "{": "}"}[t.text], 0, is_macro, t.text == "["])
            if is_macro:
                macros_open += 1
                if macros_open > MAX_MACRO_NESTING:
                    return [(prev.pos if prev else t.pos,
                             f"comprehensions ({', '.join(sorted(MACROS))}) are nested more than "
                             f"{MAX_MACRO_NESTING} deep")]
        elif t.kind == "op" and t.text in (")", "]", "}"):
            if stack and stack.pop()[2]:  # a comprehension's call closes
                macros_open -= 1
        elif t.kind == "op" and t.text == "," and stack and stack[-1][3]:
            stack[-1][1] += 1
            if stack[-1][1] >= MAX_LIST_ITEMS:
                return [(t.pos, f"a list literal holds more than {MAX_LIST_ITEMS} items")]
        prev = t
    return []


def _operand_expected(prev: Tok) -> bool:
    """After this token a '!' or '-' is a prefix operator (not a binary minus)."""
    if prev.kind == "op":
        return prev.text not in (")", "]", "}")
    return False


def cost(tree: Node) -> int:
    """Worst-case nodes visited by one evaluation (iterative: the tree may be deep)."""
    return _cost(tree)


def _cost(node: Node) -> int:
    total = 0
    # (node, multiplier): a comprehension's body runs once per element of its target
    todo: list[tuple[Node, int]] = [(node, 1)]
    while todo:
        n, mult = todo.pop()
        total += mult
        if total > COST_BUDGET * 10:
            return total
        if n.kind == "call" and n.value in MACROS and n.target is not None:
            todo.append((n.target, mult))
            size = len(n.target.args) if n.target.kind == "list" else DATA_LIST_SIZE
            for a in n.args[1:]:  # args[0] is the loop variable
                todo.append((a, mult * max(size, 1)))
            continue
        if n.kind == "call" and n.value in ("matches", "contains", "startsWith", "endsWith"):
            total += mult * 50  # linear in the text; a constant factor for an evidence string
        for child in _children(n):
            todo.append((child, mult))
    return total


def _children(n: Node) -> Iterator[Node]:
    if n.target is not None:
        yield n.target
    yield from n.args


def budget_problem(tree: Node | None) -> str | None:
    """A message when the condition's worst case exceeds the evaluation budget."""
    if tree is None:
        return None
    c = cost(tree)
    if c > COST_BUDGET:
        return (f"the condition may cost about {c:,} steps per finding (budget {COST_BUDGET:,}): a "
                f"comprehension over a list from the data counts {DATA_LIST_SIZE:,} elements; simplify it")
    return None
