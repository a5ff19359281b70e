"""Detectors: pure, vectorised functions of (batch, profiles, params, now).

``DETECTORS`` is the closed registry; third parties add detectors through the entry-point group
``vigil.detectors`` (a class that subclasses :class:`detectors.base.Detector`).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from detectors.base import Detector, DetectorError, DetectorResult, Finding, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.credential_stuffing import CredentialStuffing
from detectors.draining import Draining
from detectors.failed_logins import FailedLogins
from detectors.high_leverage import HighLeverage
from detectors.impossible_travel import ImpossibleTravel
from detectors.isolation import Isolation
from detectors.large_withdrawal import LargeWithdrawal
from detectors.login_risk import LoginRisk
from detectors.new_address import NewAddress
from detectors.new_device import NewAsn, NewDevice, NewSubnet
from detectors.new_location import NewLocation
from detectors.trading_spike import TradingSpike
from detectors.withdrawal_after_change import WithdrawalAfterChange
from detectors.withdrawal_risk import WithdrawalRisk

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        NewLocation,
        ImpossibleTravel,
        NewDevice,
        NewSubnet,
        NewAsn,
        LoginRisk,
        FailedLogins,
        CredentialStuffing,
        LargeWithdrawal,
        HighLeverage,
        NewAddress,
        WithdrawalAfterChange,
        WithdrawalRisk,
        Draining,
        TradingSpike,
        Isolation,
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
