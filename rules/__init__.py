"""YAML rules for security staff: schema, loader with positioned errors, CEL conditions, matcher."""

from rules.engine import Decision, evaluate
from rules.loader import DEFAULT_PACK, RuleError, RuleLoadError, RuleSet, load_rules

__all__ = ["DEFAULT_PACK", "Decision", "RuleError", "RuleLoadError", "RuleSet", "evaluate", "load_rules"]
