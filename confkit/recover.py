"""Every YAML syntax error of a file, not just the first, each at the line a person got wrong.

A YAML parser stops at its first error, and says where *it* noticed, which is often not where the
mistake is: a key indented one space too far is read as the continuation of the value above and
reported as "mapping values are not allowed here" at its colon; a list item's ``- `` written
one space short is reported on the line below it.  This module does two things about that:

``diagnose``  re-reads the lines up to the parser's complaint the way a person checks them --
              which lines belong together, at which indentation -- and names the line whose
              indentation disagrees with its neighbours, in plain words ("this line is indented
              3 spaces but the lines around it use 4").
``recover``   blanks out the entry (the list item or key under a top-level key) that holds the
              broken lines and parses the rest again, so the file's other mistakes are still
              found -- at their own line numbers, since blanked lines stay as empty lines.
              List items are kept as a null placeholder (``- ~``) so the items after them keep
              their positions in the list; :attr:`Recovered.skipped` says which lines were left
              out, so a caller can skip what stood there.

It knows YAML, nothing of what the file configures.  ``unit`` is the caller's word for the
things a file lists ("rule"), used in the advice.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError

Problem = tuple[int, int, str]
_KEY = re.compile(r"""^(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{\[\]},&*!|>%@`-][^#]*?|-[^\s#][^#]*?)\s*:(?:\s|$)""")
_BLOCK_SCALAR = re.compile(r"^(?:[&!]\S+\s+)*[|>][-+0-9]*\s*(?:#.*)?$")


@dataclass
class _Line:
    no: int  # 0-based
    indent: int
    item: bool  # starts with '- '
    keycol: int  # where the key (or the item's value) starts
    key: str | None
    value: str  # after 'key:' (or after '- ' for a bare item), comment stripped
    opens: bool = False  # a key (or '-') with nothing after it: the next lines are its value
    before: _Line | None = None  # the structural line above


@dataclass
class _Level:
    col: int
    kind: str  # "map" | "seq"
    line: _Line
    opener: _Line | None  # the line whose empty value this level fills (None: top, or an item's map)


@dataclass(frozen=True)
class Recovered:
    """The document read from what could be read, every syntax problem, and the lines left out."""

    doc: Any  # None when nothing could be read
    problems: list[Problem]
    skipped: list[tuple[int, int]] = field(default_factory=list)  # 1-based inclusive line ranges

    def skips(self, line: int) -> bool:
        """Whether ``line`` (1-based) was in a part left out."""
        return any(a <= line <= b for a, b in self.skipped)


def recover(text: str, *, guard: Callable[[str], list[Problem]] | None = None, unit: str = "entry",
            max_problems: int = 20, broken: Sequence[int] = (),
            event_guard: Callable[[], Callable[[Any], Problem | None]] | None = None) -> Recovered:
    """Parse ``text``; on a syntax error, note it, blank the entry that holds it and parse again.

    ``guard`` runs before each attempt to build the document (the caller's limits: size of the
    document once aliases are expanded, nesting, read from the events up to the first syntax
    error); what it returns is final -- the document is then not built.
    ``broken`` are lines (1-based) the caller has already reported (a tab in the indentation):
    their entries are left out from the start.
    ``event_guard`` makes the same limits cost one parse instead of two: it returns a fresh check
    that is given each parser event of the load itself, in order, before the tree holds it; the
    first problem it returns is final, as the guard's is.  ``guard`` then runs only when the load
    fails (a composer error such as an unknown alias stops the load where the guard's event scan
    would go on), so the answer is the one the guard alone gives.
    """
    from ruamel.yaml import YAML

    problems: list[Problem] = []
    skipped: list[tuple[int, int]] = []
    cur = text
    for line in sorted(set(broken)):
        if any(a <= line <= b for a, b in skipped):
            continue
        cur, rng = _blank(cur, {line})
        if rng is not None:
            skipped.append(rng)
    for _ in range(max_problems):
        # the guard reads the events (no tree) up to the first syntax error, so the tree built
        # next never holds more than it has counted
        if event_guard is None:
            fatal = guard(cur) if guard else []
            if fatal:
                return Recovered(None, problems + fatal, skipped)
        try:
            doc = YAML(typ="rt").load(cur) if event_guard is None else _checked_load(cur, event_guard())
            return Recovered(doc, problems, skipped)
        except _OverLimit as over:
            return Recovered(None, [*problems, over.problem], skipped)
        except YAMLError as e:
            fatal = guard(cur) if guard and event_guard is not None else []
            if fatal:
                return Recovered(None, problems + fatal, skipped)
            if not isinstance(e, MarkedYAMLError):
                problems.append((1, 1, f"invalid YAML: {e}"))
                break
            line, col, msg, targets = diagnose(e, cur, unit=unit)
            problems.append((line, col, msg))
            cur, rng = _blank(cur, targets)
            if rng is None:
                break
            skipped.append(rng)
    return Recovered(None, problems, skipped)


class _OverLimit(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem[2])
        self.problem = problem


def _checked_load(text: str, check: Callable[[Any], Problem | None]) -> Any:
    """``YAML(typ="rt").load(text)``, with ``check`` given each event as the parser makes it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.parser import RoundTripParser

    class _Checked(RoundTripParser):
        def _next(self) -> None:
            if self.current_event is None and self.state:
                ev = self.current_event = self.state()
                problem = check(ev) if ev is not None else None
                if problem is not None:
                    raise _OverLimit(problem)

        def check_event(self, *choices: Any) -> bool:
            self._next()
            return super().check_event(*choices)

        def peek_event(self) -> Any:
            self._next()
            return super().peek_event()

        def get_event(self) -> Any:
            self._next()
            return super().get_event()

    yaml = YAML(typ="rt")
    if yaml.Parser is not RoundTripParser:  # pragma: no cover - a ruamel that changed its round-trip parser
        raise RuntimeError(f"unexpected ruamel parser {yaml.Parser!r}")
    yaml.Parser = _Checked
    return yaml.load(text)


# -- reading lines the way a person does ----------------------------------------------------------
def _lines(text: str) -> list[_Line]:
    """The lines that carry structure: no blanks, comments, block-scalar text or continuations."""
    out: list[_Line] = []
    raw = text.split("\n")
    skip_deeper: int | None = None  # inside a block scalar / plain continuation: lines deeper than this
    block = False  # ... a block scalar (any text), rather than a plain value (no 'key:' lines)
    brackets = 0
    quote: str | None = None
    for no, ln in enumerate(raw):
        s = ln.lstrip(" ")
        indent = len(ln) - len(s)
        if quote is not None:  # a quoted scalar spanning lines
            if _closes(s, quote):
                quote = None
            continue
        if brackets > 0:
            brackets += _depth(s)
            continue
        if not s or s.startswith("#") or (s.startswith(("---", "...")) and indent == 0):
            continue
        if skip_deeper is not None:
            if indent > skip_deeper and (block or not _KEY.match(s.lstrip("- "))):
                continue
            skip_deeper = None
        rest, keycol, item = s, indent, False
        while rest == "-" or rest.startswith("- "):
            item = True
            nxt = rest[1:].lstrip(" ")
            keycol += len(rest) - len(nxt)
            rest = nxt
        m = _KEY.match(rest)
        key = m.group(0).rstrip().rstrip(":").strip() if m else None
        value = _uncomment(rest[m.end():] if m else rest).strip()
        if not item and key is None and out and indent > out[-1].keycol:
            continue  # a plain value continued on this line
        line = _Line(no, indent, item, keycol, key, value, before=out[-1] if out else None)
        line.opens = (key is not None or item) and (value == "" or bool(re.fullmatch(r"[&!]\S+", value)))
        out.append(line)
        block = bool(_BLOCK_SCALAR.match(value))
        if block:
            skip_deeper = indent if not item else keycol - 1
        elif value[:1] in "[{":
            brackets = _depth(value)
        elif value[:1] in "'\"" and not _closes(value[1:], value[0]):
            quote = value[0]
        elif value:
            skip_deeper = keycol if key is not None else None  # a plain value may go on, deeper
    return out


def _uncomment(s: str) -> str:
    q: str | None = None
    for i, ch in enumerate(s):
        if q:
            if ch == q:
                q = None
        elif ch in "'\"" and (i == 0 or s[i - 1] in " [{,:"):
            q = ch
        elif ch == "#" and (i == 0 or s[i - 1] == " "):
            return s[:i]
    return s


def _depth(s: str) -> int:
    s = _uncomment(s)
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'', "", s)
    return s.count("[") + s.count("{") - s.count("]") - s.count("}")


def _closes(s: str, quote: str) -> bool:
    body = s.replace("''", "") if quote == "'" else re.sub(r"\\.", "", s)
    return quote in body


def _steps(lines: Sequence[_Line]) -> tuple[int, int]:
    """The file's habits: how far a key's value is indented, and how far a list's '- ' is."""
    keys: Counter[int] = Counter()
    items: Counter[int] = Counter()
    for a, b in itertools.pairwise(lines):
        if a.opens and a.key is not None and b.indent >= a.keycol:
            (items if b.item else keys)[b.indent - a.keycol] += 1
    step = keys.most_common(1)[0][0] if keys and keys.most_common(1)[0][0] > 0 else 2
    dash = items.most_common(1)[0][0] if items else step
    return step, dash


def _indent(s: str) -> int:
    return len(s) - len(s.lstrip(" \t"))


def _spaces(n: int) -> str:
    return f"{n} space" if n == 1 else f"{n} spaces"


def _regular(lv: _Level, step: int, dash: int) -> bool:
    if lv.opener is None:
        return True
    return lv.col - lv.opener.keycol == (dash if lv.line.item else step)


def _odd_first(ln: _Line, lv: _Level, step: int, dash: int, lines: list[_Line]) -> bool:
    """Whether the first line under a key (``lv.line``), rather than ``ln`` right below it, is out of line.

    The lines from ``ln`` on vote (those at its column, before one further left); one line
    against one goes to the column that follows the file's habit (values indented by
    ``step``, list dashes by ``dash``).
    """
    first, opener = lv.line, lv.opener
    if opener is None or first is not ln.before or first.item != ln.item:
        return False
    run = _run(ln, lines)
    if run != 1:
        return run > 1
    habit = dash if ln.item else step
    return ln.indent - opener.keycol == habit and first.indent - opener.keycol != habit


def _run(ln: _Line, lines: list[_Line]) -> int:
    """How many lines from ``ln`` on sit at its column (deeper ones skipped) before one further left."""
    run = 0
    for x in lines:
        if x.no < ln.no:
            continue
        if x.indent < ln.indent:
            break
        run += x.indent == ln.indent and x.item == ln.item
    return run


def _item_keys_off(ln: _Line, first: _Line, lines: list[_Line]) -> bool:
    """Whether a list item's first key (``- key: v``) is out of line with the keys right below it."""
    if not first.item or first.key is None or first is not ln.before or ln.item:
        return False
    return _run(ln, lines) > 1


def _blame_deep(ln: _Line, prev: _Line | None, levels: list[_Level], step: int, dash: int, lines: list[_Line],
                popped: dict[int, str]) -> tuple[_Line, int, _Line | None]:
    top = levels[-1]
    # a key that should have been indented under the key above it (which has no value
    # of its own now), or that left the block it belongs to: the lines below it are right
    if prev is not None and prev.key is not None and not prev.item and prev.indent == top.col and (
            (prev.before is not None and prev.before.opens and prev.before.indent == prev.indent)
            or popped.get(ln.indent) == ("seq" if ln.item else "map")):
        return prev, ln.indent, None
    if _odd_first(ln, top, step, dash, lines):
        return top.line, ln.indent, None
    if top.opener is None and _item_keys_off(ln, top.line, lines):
        return top.line, top.line.indent + ln.indent - top.line.keycol, None
    # '- key: v' written short, with its other keys where they belong: the '- ' line is off
    if top.line.item and top.opener is None and len(levels) >= 2:
        seq = levels[-2]
        if not _regular(seq, step, dash) and seq.opener is not None and ln.indent == seq.opener.keycol + dash + (
                top.col - seq.col):
            return top.line, seq.opener.keycol + dash, None
    return ln, top.col, prev


def _blame_between(ln: _Line, levels: list[_Level], step: int, dash: int, lines: list[_Line]
                   ) -> tuple[_Line, int, _Line | None]:
    lower = [lv for lv in levels if lv.col < ln.indent]
    if not lower:  # left of the file's first line: that line is the odd one
        return levels[0].line, ln.indent, None
    upper = next(lv for lv in levels if lv.col > ln.indent)
    if _odd_first(ln, upper, step, dash, lines):
        return upper.line, ln.indent, None
    if upper.opener is None and _item_keys_off(ln, upper.line, lines):
        return upper.line, upper.line.indent + ln.indent - upper.line.keycol, None
    if lower:  # the key above this block is off, its block and this line are right
        lv = lower[-1]
        if not _regular(lv, step, dash) and lv.opener is not None and not lv.line.item \
                and ln.indent == lv.opener.keycol + step:
            return lv.line, ln.indent, None
    kind = "seq" if ln.item else "map"
    fitting = [lv.col for lv in levels if lv.kind == kind] or [lv.col for lv in levels]
    want = min(fitting, key=lambda c: (abs(c - ln.indent), -c))
    return ln, want, None


def diagnose(e: MarkedYAMLError, text: str, *, unit: str = "entry") -> tuple[int, int, str, set[int]]:
    """A YAML error in words at the line to fix: ``(line, col, message, lines that are broken)``.

    Lines are 1-based.  Indentation mistakes are placed at the line whose indentation disagrees
    with the lines around it; other problems are worded by :func:`confkit.yaml_message`.
    """
    from confkit import yaml_message

    line, col, msg = yaml_message(e)
    pm, cm = e.problem_mark, e.context_mark
    targets = {line}
    if pm is not None and "end of stream" not in str(e.problem or ""):
        targets.add(min(pm.line + 1, text.count("\n") + 1))
    problem = str(e.problem or "")
    context = str(e.context or "")
    if cm is not None and "while scanning a simple key" in context:
        targets.add(cm.line + 1)
    indentation = (
        problem == "mapping values are not allowed here"
        or problem.startswith("expected <block end>")
        or "while scanning a simple key" in context
        or "expected '<document start>'" in problem
    )
    if indentation and pm is not None:
        raw = text.split("\n")
        here = raw[pm.line].strip() if pm.line < len(raw) else ""
        dashed = re.match(r"^-([^\s\-\d.][^:#]*):(?:\s|$)", here)
        if dashed:
            fixed = "- " + here[1:]
            return (pm.line + 1, _indent(raw[pm.line]) + 1,
                    f"'{here}' needs a space after the '-' to start a list item (write '{fixed}')", targets)
        for k in _above(raw, pm.line):
            glued = _GLUED.match(raw[k].strip())
            if glued and ": " not in raw[k] and not raw[k].rstrip().endswith(":"):
                key, value = glued.groups()
                targets.add(k + 1)
                return (k + 1, _indent(raw[k]) + 1,
                        f"'{key}:{value}' needs a space after the ':' (write '{key}: {value}')", targets)
        lines = _lines(text)
        found = _culprit(lines, pm.line)
        if found is not None:
            ln, want, cont, lists = found
            said = f"this line is indented {_spaces(ln.indent)} but the lines around it use {want}"
            if cont is not None and ln.indent > want and cont.key:
                said += f" (indented further, it reads as part of the value of '{cont.key}' on line {cont.no + 1})"
            if ln.item and not lists:
                said += f": start the '- ' of every {unit} at the same column"
                said += f", so that the keys of one {unit} line up" if ln.key is not None else ""
            elif ln.item:
                said += ": start the '- ' of every item of a list at the same column"
            elif lists:
                said += f": line the keys of one {unit} up under each other"
            else:
                said += ": line keys that belong together up under each other"
            targets.add(ln.no + 1)
            return ln.no + 1, ln.indent + 1, said, targets
        if cm is not None and "while scanning a simple key" in context:
            return (cm.line + 1, cm.column + 1,
                    "this line is not 'key: value'; if it continues the value on the line above, indent it "
                    "further than that line's key", targets)
    return line, col, msg, targets


_GLUED = re.compile(r"^(?:- +)?([A-Za-z_][\w.-]*):([^\s:/][^:]*)$")


def _above(raw: list[str], line: int) -> list[int]:
    """Line ``line`` (0-based) and the structural line above it."""
    out = [line] if line < len(raw) else []
    k = min(line, len(raw)) - 1
    while k >= 0 and (not raw[k].strip() or raw[k].lstrip().startswith("#")):
        k -= 1
    return out + ([k] if k >= 0 else [])


def _culprit(lines: list[_Line], upto: int) -> tuple[_Line, int, _Line | None, list[int]] | None:
    """The first line (up to line ``upto``, 0-based) whose indentation YAML cannot accept.

    Returns the line to blame, the indentation it should have, the line whose value it would
    otherwise continue (when it is indented too far after a value), and the columns of the
    lists it is inside (none: a '- ' of the file's own entries, or a key outside any list).
    """
    levels: list[_Level] = []
    found = _walk(lines, upto, levels)
    if found is None:
        return None
    ln, want, _ = found
    return (*found, [lv.col for lv in levels if lv.kind == "seq" and lv.col < min(want, ln.indent)])


def _walk(lines: list[_Line], upto: int, levels: list[_Level]) -> tuple[_Line, int, _Line | None] | None:
    step, dash = _steps(lines)
    prev: _Line | None = None
    popped: dict[int, str] = {}  # the blocks the line above closed: column -> kind
    for ln in lines:
        if ln.no > upto:
            break
        n = ln.indent
        closed: dict[int, str] = {}
        if not levels:
            levels.append(_Level(n, "seq" if ln.item else "map", ln, None))
        elif prev is not None and prev.opens and (n > prev.keycol or (ln.item and n == prev.keycol and prev.key)):
            levels.append(_Level(n, "seq" if ln.item else "map", ln, prev))
        elif n > levels[-1].col:
            return _blame_deep(ln, prev, levels, step, dash, lines, popped)
        else:
            same = [lv for lv in levels if lv.col == n]
            if not same:
                return _blame_between(ln, levels, step, dash, lines)
            while levels[-1].col != n:
                gone = levels.pop()
                closed[gone.col] = gone.kind
            kind = "seq" if ln.item else "map"
            if levels[-1].kind != kind:
                if ln.item:
                    seqs = [lv.col for lv in levels if lv.kind == "seq"]
                    return ln, min(seqs, key=lambda c: abs(c - n)) if seqs else n + max(dash, 2), None
                if prev is not None and _item_keys_off(ln, prev, lines):
                    return prev, prev.indent + n - prev.keycol, None
                inner = [lv.col for lv in levels if lv.col > n]
                return ln, inner[0] if inner else n + step, None
        if ln.item and ln.key is not None:
            levels.append(_Level(ln.keycol, "map", ln, None))
        prev, popped = ln, closed
    return None


# -- leaving a broken entry out -------------------------------------------------------------------
def _blank(text: str, targets: set[int]) -> tuple[str, tuple[int, int] | None]:
    """``text`` with the entries holding ``targets`` (1-based lines) blanked, and the range blanked."""
    raw = text.split("\n")
    content = [i for i, ln in enumerate(raw) if ln.strip() and not ln.lstrip().startswith("#")]
    if not content:
        return text, None
    first = content[0]
    top_is_list = raw[first].startswith("-")

    def is_top(i: int) -> bool:
        ln = raw[i]
        return not ln.startswith((" ", "\t")) and (top_is_list or not ln.startswith("-"))

    tops = [i for i in content if is_top(i)] or [first]
    lo, hi = len(raw), -1
    dashes: list[int] = []
    pad = 0
    for t in sorted(targets):
        i = min(max(t - 1, 0), len(raw) - 1)
        if raw[i].strip() in ("---", "...") or (i < len(raw) and raw[i].startswith("---")):
            lo, hi = min(lo, i), len(raw) - 1  # a second document: leave out everything from there
            continue
        starts = [x for x in tops if x <= i]
        top = starts[-1] if starts else first
        after = [x for x in tops if x > top]
        end = (after[0] - 1) if after else len(raw) - 1
        kids = [x for x in content if top < x <= end]
        if i == top or not kids:
            lo, hi = min(lo, top), max(hi, end)
            continue
        listed = raw[kids[0]].lstrip(" ").startswith("-")
        indents = Counter(_indent(raw[x]) for x in kids if not listed or raw[x].lstrip(" ").startswith("-"))
        col = indents.most_common(1)[0][0] if listed else min(indents)

        def starts_entry(x: int, col: int = col, listed: bool = listed) -> bool:
            s = raw[x].lstrip(" ")
            if listed:
                return (s == "-" or s.startswith("- ")) and _indent(raw[x]) <= col + 1
            return _indent(raw[x]) <= col

        heads = [x for x in kids if starts_entry(x)] or [kids[0]]
        before = [x for x in heads if x <= i]
        a = before[-1] if before else kids[0]
        later = [x for x in heads if x > a]
        b = (later[0] - 1) if later else end
        while b > a and b not in kids:
            b -= 1
        lo, hi = min(lo, a), max(hi, b)
        if listed:
            pad = col
            dashes.extend(heads)
    if hi < lo:
        return text, None
    if not any(raw[x].strip() and not raw[x].lstrip().startswith("#") for x in range(lo, hi + 1)):
        return text, None
    out = list(raw)
    for x in range(lo, hi + 1):
        out[x] = ""
    for x in dashes:
        if lo <= x <= hi:
            out[x] = " " * pad + "- ~"
    return "\n".join(out), (lo + 1, hi + 1)
