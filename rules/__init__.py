"""YAML rules for security staff: schema, loader with positioned errors, CEL conditions, matcher.

Exception tree::

    RuleLoadError          a rule set does not load; ``errors`` lists every RuleError (path:line:col)
    ExpressionError        (a ValueError) one condition does not compile or type-check
"""

from rules.engine import Decision, Recent, evaluate, split_inhibited
from rules.errors import RuleError
from rules.expr import ExpressionError
from rules.loader import DEFAULT_PACK, RuleLoadError, RuleSet, content_hash, load_rules

__all__ = [
    "DEFAULT_PACK",
    "Decision",
    "ExpressionError",
    "Recent",
    "RuleError",
    "RuleLoadError",
    "RuleSet",
    "content_hash",
    "evaluate",
    "load_rules",
    "split_inhibited",
]
