"""Rule conditions in CEL (common-expression-language), compiled once at load.

Nothing from YAML reaches ``eval`` or ``exec``: CEL is not Turing-complete and the compiled
program only sees the plain dict context built for each finding.  Field references are checked
at load against the known context shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import cel

# the context a condition sees; nested dicts are open (evidence varies by detector)
CONTEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "finding": ("id", "detector", "family", "kind", "score", "account_id", "ts", "event_ids", "evidence"),
    "account": ("account_id", "tier", "locale", "timezone", "age_days", "status", "country"),
}
OPEN_FIELDS = {("finding", "evidence")}


class ExpressionError(ValueError):
    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


_POS = re.compile(r"<input>:(\d+):(\d+): (.*)")
_REF = re.compile(r"(?<![\w.\"'])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)")


class Condition:
    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self.program = cel.compile(source)
        except ValueError as e:
            text = str(e)
            m = _POS.search(text)
            if m:
                raise ExpressionError(m.group(3).strip(), int(m.group(1)), int(m.group(2)) + 1) from None
            raise ExpressionError(text.splitlines()[0]) from None
        self._check_fields()

    def _check_fields(self) -> None:
        from difflib import get_close_matches

        stripped = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', lambda m: " " * len(m.group()), self.source)
        names = set(self.program.variables())
        for m in _REF.finditer(stripped):
            root, rest = m.group(1), m.group(2)
            if root not in names:
                continue
            if root not in CONTEXT_FIELDS:
                hint = get_close_matches(root, list(CONTEXT_FIELDS), n=1)
                raise ExpressionError(
                    f"unknown name '{root}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                    + f" (known: {', '.join(CONTEXT_FIELDS)})",
                    *_line_col(self.source, m.start()),
                )
            parts = [p for p in rest.split(".") if p]
            if parts and (root, parts[0]) not in OPEN_FIELDS and parts[0] not in CONTEXT_FIELDS[root]:
                hint = get_close_matches(parts[0], list(CONTEXT_FIELDS[root]), n=1)
                raise ExpressionError(
                    f"unknown field '{root}.{parts[0]}'" + (f"; did you mean '{root}.{hint[0]}'?" if hint else ""),
                    *_line_col(self.source, m.start() + len(root) + 1),
                )

    def __call__(self, context: Mapping[str, Any]) -> bool:
        try:
            return self.program.execute(dict(context)) is True
        except (KeyError, ValueError, TypeError, RuntimeError):
            # a field absent from this finding's evidence: the condition does not hold
            return False


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col
