"""Learned-detector models from the operator's settings, attached to a rule set after it loads.

The rule loader never reads a model: a rule file may only *name* one (``detectors: {isolation:
{model: NAME}}``).  The settings say where each named model is and pin its SHA-256; this module
reads them once (:func:`load_models`, hash first, then skops with an explicit trusted-types
list) and gives every learned detector instance of a rule set the model it names
(:func:`bind_models`) -- at start-up, and again after each hot reload.  A model that is missing or
refused makes its detector refuse to start: it skips every batch with the reason counted, and
the reason is logged once here; the rest of the engine runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from detectors.isolation import Isolation, Model, ModelError, load_model
from rules.loader import RuleSet
from vigil.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    """The operator's models by name, and why each refused one was refused."""

    loaded: Mapping[str, Model] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)


def load_models(settings: Settings) -> Models:
    loaded: dict[str, Model] = {}
    refused: dict[str, str] = {}
    for name, cfg in settings.models.items():
        try:
            loaded[name] = load_model(cfg.path, cfg.sha256)
        except ModelError as e:
            refused[name] = f"model '{name}' refused: {e}"
            log.error("models.%s: %s The learned detector that names it will not start.", name, e)
    return Models(loaded, refused)


def bind_models(rules: RuleSet, models: Models) -> RuleSet:
    """Attach to every learned detector instance (base and segment overrides) the model it names."""
    for conf in rules.configs.values():
        for det in (conf.base, *(o.detector for o in conf.overrides)):
            if isinstance(det, Isolation):
                name = det.p["model"]
                det.attach(models.loaded.get(name), models.refused.get(name))
    base = rules.detectors.get("isolation")
    if isinstance(base, Isolation) and base.model_ is None and base.refused_ is None and rules.for_detector(
            "isolation") and models.loaded:
        log.warning("the rule set names model '%s', which the settings do not define (models: %s)",
                    base.p["model"], ", ".join(sorted(models.loaded)))
    return rules
