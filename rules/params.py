"""Detector parameters in rule files, with per-segment overrides, checked by each detector's own ``Param``.

A ``detectors:`` section names a detector and sets its parameters; ``overrides`` gives other
values for a segment of accounts (the first matching override wins)::

    detectors:
      large_withdrawal:
        absolute_usd: 10000
        overrides:
          - segment: {tiers: [vip, institutional]}
            absolute_usd: 100000

Several files may configure the same detector, but one parameter is set in one place only: a
second value is an error rather than a silent "last file wins".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from detectors.base import Detector, ParameterError
from rules.context import account_context, in_segment
from rules.errors import RuleError, error_at, field_path, humanise, locate, plain, show, suggest
from rules.schema import Segments


@dataclass(frozen=True)
class Override:
    segment: Segments
    detector: Detector
    params: Mapping[str, Any]
    source: str  # path:line


@dataclass
class DetectorConfig:
    """One detector's effective parameters: the base instance and the per-segment variants."""

    name: str
    base: Detector
    overrides: list[Override] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> path:line that set it

    def for_account(self, account: Mapping[str, Any]) -> Detector:
        """The instance for one account (``account`` as built by :func:`rules.context.account_context`)."""
        for o in self.overrides:
            if in_segment(o.segment, account):
                return o.detector
        return self.base

    def partition(
        self, accounts: Iterable[str], directory: Mapping[str, Mapping[str, Any]], now: datetime
    ) -> list[tuple[Detector, list[str]]]:
        """Split account ids by the instance that judges them; the base instance comes first."""
        groups: dict[int, tuple[Detector, list[str]]] = {id(self.base): (self.base, [])}
        for acct in accounts:
            det = self.for_account(account_context(directory.get(acct), now))
            groups.setdefault(id(det), (det, []))[1].append(acct)
        return [g for g in groups.values() if g[1] or g[0] is self.base]


@dataclass
class _Pending:
    params: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    pos: tuple[str, int, int] = ("?", 1, 1)
    overrides: list[tuple[Segments, dict[str, Any], tuple[str, int, int]]] = field(default_factory=list)


class ParamCollector:
    """Gathers ``detectors:`` sections from every file, then builds the instances."""

    def __init__(self, registry: Mapping[str, type[Detector]]) -> None:
        self.registry = registry
        self.pending: dict[str, _Pending] = {}

    def add_section(self, path: str, doc: CommentedMap, section: Any) -> list[RuleError]:
        errs: list[RuleError] = []
        if not isinstance(section, CommentedMap):
            return [error_at(path, doc, ("detectors",),
                             f"detectors: expected a mapping of detector names, got {show(plain(section))}")]
        for name, body in section.items():
            line, col, _ = locate(doc, ("detectors", name), key=True)
            cls = self.registry.get(str(name))
            if cls is None:
                errs.append(
                    RuleError(path, line, col, None,
                              f"detectors: unknown detector '{name}'{suggest(name, self.registry)}")
                )
                continue
            if body is None:
                continue
            if not isinstance(body, CommentedMap):
                errs.append(
                    RuleError(path, line, col, None,
                              f"detectors.{name}: expected a mapping of parameters, got {show(plain(body))}")
                )
                continue
            p = self.pending.setdefault(str(name), _Pending(pos=(path, line, col)))
            for key, value in body.items():
                if key == "overrides":
                    errs += self._overrides(path, doc, cls, str(name), value)
                    continue
                err, checked = self._param(
                    path, doc, ("detectors", name, key), cls, str(name), str(key), value
                )
                if err:
                    errs.append(err)
                    continue
                kl = doc["detectors"][name].lc.key(key)[0] + 1
                if key in p.params:
                    errs.append(
                        RuleError(
                            path,
                            *locate(doc, ("detectors", name, key), key=True)[:2],
                            None,
                            f"detectors.{name}.{key}: already set at {p.sources[key]}; "
                            f"set a parameter in one place only",
                        )
                    )
                    continue
                p.params[str(key)] = checked
                p.sources[str(key)] = f"{path}:{kl}"
        return errs

    def _param(
        self, path: str, doc: Any, loc: tuple[Any, ...], cls: type[Detector], name: str, key: str, value: Any
    ) -> tuple[RuleError | None, Any]:
        where = field_path(loc)
        retired = getattr(cls, "retired_params", {})
        if key in retired:
            line, col, _ = locate(doc, loc, key=True)
            return RuleError(path, line, col, None, f"{where}: {retired[key]}"), None
        if key not in cls.params:
            line, col, _ = locate(doc, loc, key=True)
            known = sorted(cls.params)
            hint = suggest(key, [*known, "overrides"])
            why = hint or f" (parameters: {', '.join(known)})"
            return RuleError(path, line, col, None, f"{where}: {name} has no parameter '{key}'{why}"), None
        try:
            return None, cls.params[key].validate(cls.__name__, key, plain(value))
        except ParameterError as e:
            line, col, _ = locate(doc, loc)
            return RuleError(path, line, col, None, f"{where}: {e}"), None

    def _overrides(self, path: str, doc: Any, cls: type[Detector], name: str, value: Any) -> list[RuleError]:
        base = ("detectors", name, "overrides")
        if not isinstance(value, list) or not value:
            return [error_at(path, doc, base,
                             f"{'.'.join(base)}: expected a list of {{segment: ..., <parameter>: <value>}} entries")]
        errs: list[RuleError] = []
        for i, item in enumerate(value):
            first = len(errs)
            iline, icol, _ = locate(doc, (*base, i))
            where = f"{'.'.join(base)}[{i}]"
            if not isinstance(item, CommentedMap) or "segment" not in item:
                errs.append(
                    RuleError(path, iline, icol, None,
                              f"{where}: each override needs a 'segment' and the parameters it changes")
                )
                continue
            seg = None
            try:
                seg = Segments.model_validate(plain(item["segment"]))
            except ValidationError as e:
                for pe in e.errors():
                    loc = (*base, i, "segment", *pe["loc"])
                    el, ec, _ = locate(doc, loc, key=pe["type"] == "extra_forbidden")
                    msg = humanise(pe, pe["loc"], Segments)
                    errs.append(RuleError(path, el, ec, None, f"{where}.segment: {msg}"))
            params: dict[str, Any] = {}
            for key, v in item.items():
                if key == "segment":
                    continue
                err, checked = self._param(path, doc, (*base, i, key), cls, name, str(key), v)
                if err:
                    errs.append(err)
                else:
                    params[str(key)] = checked
            if not params and len(errs) == first:
                errs.append(RuleError(path, iline, icol, None, f"{where}: the override changes no parameter"))
            if seg is not None and params:
                self.pending.setdefault(name, _Pending(pos=(path, iline, icol))).overrides.append(
                    (seg, params, (path, iline, icol))
                )
        return errs

    def build(self) -> tuple[dict[str, DetectorConfig], list[RuleError]]:
        """Instantiate every registered detector (unconfigured ones with their defaults)."""
        out: dict[str, DetectorConfig] = {}
        errs: list[RuleError] = []
        for name, cls in self.registry.items():
            p = self.pending.get(name, _Pending())
            try:
                base = cls(**p.params)
            except ParameterError as e:
                errs.append(RuleError(*p.pos, None, f"detectors.{name}: {e}"))
                continue
            conf = DetectorConfig(name, base, sources=dict(p.sources))
            for seg, params, pos in p.overrides:
                try:
                    conf.overrides.append(
                        Override(seg, cls(**{**p.params, **params}), params, f"{pos[0]}:{pos[1]}")
                    )
                except ParameterError as e:
                    errs.append(RuleError(*pos, None, f"detectors.{name}.overrides: {e}"))
            out[name] = conf
        return out, errs
