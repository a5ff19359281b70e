"""Errors in rule files, worded for security staff and placed at ``path:line:col``.

The wording of YAML and pydantic problems is the configuration toolkit's (:mod:`confkit`, shared
with the ticket policy, the settings and the channel registry); this module adds what is the
rules' own: the rule id in each message, the action tags and what a rule's names look like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

import confkit
from confkit import field_path, model_at, plain, scalar_position, show, suggest, yaml_message
from rules.schema import ACTION_TYPES

__all__ = ["RuleError", "error_at", "field_path", "humanise", "locate", "model_at", "plain", "scalar_position", "show",
           "suggest", "yaml_message"]


@dataclass(frozen=True)
class RuleError:
    path: str
    line: int
    col: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        who = f'rule "{self.rule_id}": ' if self.rule_id else ""
        where = f"{self.path}:{self.line}:{self.col}" if self.line else self.path  # line 0: the whole set
        return f"{where}: {who}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "rule": self.rule_id,
            "message": self.message,
        }


NAMES = {
    "id": "a rule id: lower-case letters, digits, '-', '_' or '.' (up to 80), like 'login-new-country'",
    "template": "a template name: lower-case letters, digits and '_'",
}


def humanise(err: Mapping[str, Any], loc: Sequence[Any], root: type[BaseModel]) -> str:
    """One pydantic error in a rule file, in words (actions are the tagged union here)."""
    return confkit.humanise(err, loc, root, union_tags=ACTION_TYPES, names=NAMES)


def locate(doc: Any, loc: Iterable[Any], key: bool = False) -> tuple[int, int, list[Any]]:
    """Line and column of ``loc`` in a rule file (see :func:`confkit.locate`)."""
    return confkit.locate(doc, loc, key, union_tags=ACTION_TYPES)


def error_at(path: str, doc: Any, loc: Sequence[Any], message: str, rule_id: str | None = None) -> RuleError:
    """A :class:`RuleError` placed at the node ``loc`` of a rule file's document."""
    line, col, _ = locate(doc, loc)
    return RuleError(path, line, col, rule_id, message)
