"""A rule set that travels to Dask workers: its files' bytes, not the compiled set.

A compiled :class:`rules.loader.RuleSet` holds compiled CEL programs, which cannot be pickled, and a
worker on another machine may not see the rule files' paths.  :class:`RuleSpec` carries the bytes
that were validated (checked against the set's ``content_hash``) and the models attached to the
learned detectors; each worker process compiles the set once and keeps it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.loader import RuleSet
from vigil.errors import VigilError

_CACHE: dict[str, RuleSet] = {}


@dataclass(frozen=True)
class RuleSpec:
    files: tuple[tuple[str, bytes], ...]  # (path relative to the rule set's root, bytes)
    content_hash: str
    models: tuple[tuple[Any, Any], ...] = ()  # (model_, refused_) of each learned detector, in order


def _digest(entries: list[tuple[str, bytes]]) -> str:  # as rules.loader hashes a rule set
    digest = hashlib.sha256()
    for rel, data in entries:
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def spec_of(rules: RuleSet) -> RuleSpec:
    """The files the rule set was loaded from, with the names its content hash was made of."""
    paths = [Path(p).absolute() for p in rules.paths]
    if not paths:
        raise VigilError("the rule set names no files: the Dask engine needs rule files to send to its workers")
    data = [p.read_bytes() for p in paths]
    base = Path(os.path.commonpath([str(p.parent) for p in paths]))
    for root in (base, *base.parents[:3]):
        entries = [(p.relative_to(root).as_posix(), d) for p, d in zip(paths, data, strict=True)]
        if _digest(entries) == rules.content_hash:
            return RuleSpec(tuple(entries), rules.content_hash, _models(rules))
    raise VigilError("the rule files changed since the rule set was loaded; run the backtest again")


def _learned(rules: RuleSet) -> list[Any]:
    from detectors.isolation import Isolation

    out = []
    for conf in rules.configs.values():
        for det in (conf.base, *(o.detector for o in conf.overrides)):
            if isinstance(det, Isolation):
                out.append(det)
    return out


def _models(rules: RuleSet) -> tuple[tuple[Any, Any], ...]:
    return tuple((getattr(d, "model_", None), getattr(d, "refused_", None)) for d in _learned(rules))


def rules_from(spec: RuleSpec) -> RuleSet:
    """The compiled rule set (once per worker process)."""
    cached = _CACHE.get(spec.content_hash)
    if cached is not None:
        return cached
    from vigil.bootstrap import load_rule_set

    with tempfile.TemporaryDirectory(prefix="vigil-rules-") as tmp:
        for rel, data in spec.files:
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        rules = load_rule_set(tmp)
    if rules.content_hash != spec.content_hash:
        raise VigilError("the rule set compiled on a worker differs from the one loaded (content hash)")
    for det, (model, refused) in zip(_learned(rules), spec.models, strict=False):
        if model is not None or refused is not None:
            det.attach(model, refused)
    _CACHE[spec.content_hash] = rules
    return rules
