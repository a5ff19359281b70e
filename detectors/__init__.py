"""Detectors: pure, vectorised functions of (batch, profiles, params, now).

``DETECTORS`` is the closed registry; third parties add detectors through the entry-point group
``vigil.detectors`` (a class that subclasses :class:`detectors.base.Detector`).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from detectors.base import Detector, DetectorError, DetectorResult, Finding, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.high_leverage import HighLeverage
from detectors.large_withdrawal import LargeWithdrawal
from detectors.new_location import NewLocation

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        NewLocation,
        LargeWithdrawal,
        HighLeverage,
    )
}


def load_plugins() -> dict[str, type[Detector]]:
    """The registry plus detectors from the ``vigil.detectors`` entry-point group."""
    found = dict(DETECTORS)
    for ep in entry_points(group="vigil.detectors"):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise LookupError(f"entry point {ep.name!r} ({ep.value}) is not a Detector subclass")
        found[ep.name] = cls
    return found


__all__ = [
    "DETECTORS",
    "Batch",
    "Detector",
    "DetectorError",
    "DetectorResult",
    "Finding",
    "Param",
    "ParameterError",
    "Skip",
    "load_plugins",
]
