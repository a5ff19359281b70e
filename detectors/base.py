"""The detector contract.

A detector is a pure function of ``(batch, profiles, now)``: it reads canonical frames, never
touches a database, a file or the clock, and returns findings plus the profile updates that let
the next batch continue where this one stopped.  Scanning a data set in ten batches yields the
same findings as one scan over the same rows, because everything a detector remembers between
batches lives in the per-account profiles it returns.

Exception tree::

    DetectorError
    └── ParameterError      (also a ValueError) bad parameter value or unknown parameter
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import pandas as pd

from detectors.batch import Batch


class DetectorError(Exception):
    """Base of every error a detector raises."""


class ParameterError(DetectorError, ValueError):
    """A detector parameter is invalid; the message names the parameter and the detector."""


@dataclass(frozen=True)
class Finding:
    """One thing a detector noticed about one account.

    ``key`` identifies the finding within its detector (usually the triggering event id plus a
    level), so the same rows always produce the same ``finding_id``.  ``evidence`` is plain JSON
    that a message or a ticket shows as is.
    """

    detector: str
    account_id: str
    ts: datetime
    key: str
    kind: str
    score: float
    event_ids: tuple[str, ...]
    evidence: Mapping[str, Any] = field(default_factory=dict)
    family: str = ""

    def __post_init__(self) -> None:
        # an event named twice (a replayed row in a window) is still one event
        if len(self.event_ids) > 1 and len(set(self.event_ids)) < len(self.event_ids):
            object.__setattr__(self, "event_ids", tuple(dict.fromkeys(self.event_ids)))

    @property
    def finding_id(self) -> str:
        return stable_id("f", self.detector, self.account_id, self.key)

    def to_context(self) -> dict[str, Any]:
        """The ``finding`` variable that rule expressions see."""
        return {
            "id": self.finding_id,
            "detector": self.detector,
            "family": self.family,
            "kind": self.kind,
            "score": float(self.score),
            "account_id": self.account_id,
            "ts": self.ts.isoformat(),
            "event_ids": list(self.event_ids),
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class Skip:
    """Rows a detector could not judge, with the reason (counted, never silent)."""

    detector: str
    reason: str
    rows: int


@dataclass
class DetectorResult:
    findings: list[Finding] = field(default_factory=list)
    # account_id -> new profile state (JSON-serialisable) for this detector
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)


@dataclass(frozen=True)
class Param:
    """A documented, validated detector parameter."""

    default: Any
    doc: str
    kind: type = float
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    choices: Sequence[Any] | None = None

    def validate(self, owner: str, name: str, value: Any) -> Any:
        if self.kind in (float, int):
            ok_type = isinstance(value, int | float) and not isinstance(value, bool)
            if self.kind is int and ok_type and float(value) != int(value):
                ok_type = False
            if not ok_type or (isinstance(value, float) and math.isnan(value)):
                raise ParameterError(
                    f"The {name!r} parameter of {owner} must be {self._describe()}. Got {value!r} instead."
                )
            value = self.kind(value)
            bad = (
                (self.gt is not None and not value > self.gt)
                or (self.ge is not None and not value >= self.ge)
                or (self.le is not None and not value <= self.le)
            )
            if bad:
                raise ParameterError(
                    f"The {name!r} parameter of {owner} must be {self._describe()}. Got {value!r} instead."
                )
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParameterError(f"The {name!r} parameter of {owner} must be true or false. Got {value!r}.")
            return value
        if self.kind in (list, tuple):
            if not isinstance(value, list | tuple):
                raise ParameterError(f"The {name!r} parameter of {owner} must be a list. Got {value!r} instead.")
            vals = tuple(value)
            if self.choices is not None:
                bad_vals = [v for v in vals if v not in self.choices]
                if bad_vals:
                    raise ParameterError(
                        f"The {name!r} parameter of {owner} accepts only {list(self.choices)}. Got {bad_vals!r}."
                    )
            return vals
        if self.choices is not None and value not in self.choices:
            raise ParameterError(
                f"The {name!r} parameter of {owner} must be one of {list(self.choices)}. Got {value!r} instead."
            )
        if not isinstance(value, self.kind):
            raise ParameterError(
                f"The {name!r} parameter of {owner} must be a {self.kind.__name__}. Got {value!r} instead."
            )
        return value

    def _describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        bounds = []
        if self.gt is not None:
            bounds.append(f"> {self.gt:g}")
        if self.ge is not None:
            bounds.append(f">= {self.ge:g}")
        if self.le is not None:
            bounds.append(f"<= {self.le:g}")
        return what + (" " + " and ".join(bounds) if bounds else "")


class Detector:
    """Base class.  Subclasses declare ``name``, ``family``, ``table``, ``params`` and ``scan``.

    ``__init__`` only validates and stores parameters (scikit-learn style); learned state lives
    in profiles, never on the instance.
    """

    name: ClassVar[str]
    family: ClassVar[str]  # login | transfer | trading | leverage | learned
    table: ClassVar[str]  # the canonical table it scans
    extra_tables: ClassVar[tuple[str, ...]] = ()  # other tables it reads, e.g. security_events
    required_columns: ClassVar[tuple[str, ...]] = ()
    optional_columns: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[Mapping[str, Param]] = {}
    description: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            from confkit import closest

            hints = []
            for u in unknown:
                close = closest(u, list(self.params))
                hints.append(f"{u!r}" + (f" (did you mean {close!r}?)" if close else ""))
            raise ParameterError(
                f"{type(self).__name__} got unknown parameter(s) {', '.join(hints)}. "
                f"Known: {', '.join(sorted(self.params))}."
            )
        values = {k: p.default for k, p in self.params.items()}
        for k, v in params.items():
            values[k] = self.params[k].validate(type(self).__name__, k, v)
        self.p: dict[str, Any] = values
        self._check_params()

    def _check_params(self) -> None:
        """Cross-parameter constraints; raise ParameterError."""

    def _require_not_above(self, small: str, big: str) -> None:
        """``params[small] <= params[big]``, or a ParameterError naming both (scikit-learn wording)."""
        a, b = self.p[small], self.p[big]
        if a > b:
            raise ParameterError(
                f"The {small!r} parameter of {type(self).__name__} must not exceed {big!r}. Got {a:g} > {b:g}."
            )

    def get_params(self) -> dict[str, Any]:
        return dict(self.p)

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        raise NotImplementedError

    def profile_keys(self, batch: Batch) -> set[str]:
        """The profile keys this batch needs loaded: the batch's accounts by default.

        A cross-account detector keyed by something else (an IP, an ASN) returns its own keys,
        e.g. ``{"ip:203.0.113.9", ...}``; the scan cycle loads exactly these before ``scan``.
        """
        return batch.accounts()

    # -- helpers shared by detectors ------------------------------------------------------
    def frame(self, batch: Batch) -> pd.DataFrame | None:
        return batch.get(self.table)

    def finding(
        self,
        account_id: str,
        ts: Any,
        key: str,
        kind: str,
        score: float,
        event_ids: Sequence[str],
        evidence: Mapping[str, Any],
    ) -> Finding:
        return Finding(
            detector=self.name,
            family=self.family,
            account_id=str(account_id),
            ts=to_datetime(ts),
            key=key,
            kind=kind,
            score=round(float(min(max(score, 0.0), 1.0)), 6),
            event_ids=tuple(str(e) for e in event_ids),
            evidence=jsonable(evidence),
        )


def stable_id(prefix: str, *parts: object) -> str:
    """A short deterministic id: the same inputs always give the same id."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"{prefix}_{h}"


def to_datetime(ts: Any) -> datetime:
    if isinstance(ts, pd.Timestamp):
        out: datetime = ts.to_pydatetime()
        return out
    if isinstance(ts, datetime):
        return ts
    return pd.Timestamp(ts).to_pydatetime()  # type: ignore[no-any-return]


def jsonable(value: Any) -> Any:
    """Convert numpy / pandas scalars and containers to plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp | datetime):
        return to_datetime(value).isoformat()
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    return json.loads(json.dumps(value, default=str))
