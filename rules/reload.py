"""Hot reload of a rule directory: apply a changed set only if it validates, else keep the last good one.

The daemon calls :meth:`RuleSetManager.maybe_reload` on a schedule.  It hashes the rule files
(names and bytes); if nothing changed it returns at once.  A changed set is loaded in full; if
any file has an error the whole set is refused -- half a rule directory is never applied -- the
previous set keeps running, and the result carries every error for the log, the metric and the
staff notification.  A refused hash is remembered so the same broken files are reported once,
not on every tick.

The audit row per applied or refused set (``vigil_rule_sets``) is written by
:mod:`alerts.rule_sets`: rules know nothing of the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from rules.errors import RuleError
from rules.loader import DEFAULT_PACK, RuleLoadError, RuleSet, content_hash, load_rules

log = logging.getLogger(__name__)
Status = Literal["unchanged", "applied", "refused"]


@dataclass(frozen=True)
class ReloadResult:
    status: Status
    content_hash: str
    at: datetime
    errors: list[RuleError] = field(default_factory=list)
    rule_set: RuleSet | None = None  # the set now running

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"


class RuleSetManager:
    """Owns the running rule set of one path.

    Construction loads the set and raises :class:`RuleLoadError` if it is invalid: with no last
    good set there is nothing safe to run, and the daemon must not start on broken rules.
    """

    def __init__(
        self, path: str | Path | None = None, *, loader: Callable[[Path], RuleSet] | None = None
    ) -> None:
        self.path = Path(path) if path is not None else DEFAULT_PACK
        self._load = loader or (lambda p: load_rules(p))
        self.current: RuleSet = self._load(self.path)
        self.refused_hash: str | None = None
        self.last_errors: list[RuleError] = []

    def maybe_reload(self, now: datetime) -> ReloadResult:
        digest = content_hash(self.path)
        if digest == self.current.content_hash or digest == self.refused_hash:
            return ReloadResult(
                "unchanged",
                digest,
                now,
                list(self.last_errors) if digest == self.refused_hash else [],
                self.current,
            )
        try:
            new = self._load(self.path)
        except RuleLoadError as e:
            errors = list(e.errors)
        except Exception as e:  # a loader bug or an unforeseen input: refused like any bad set
            log.error("reloading %s failed unexpectedly: %s: %s", self.path, type(e).__name__, e)
            errors = [RuleError(str(self.path), 0, 0, None,
                                f"the rule set could not be loaded ({type(e).__name__}); it was refused")]
        else:
            self.current = new
            self.refused_hash = None
            self.last_errors = []
            return ReloadResult("applied", new.content_hash, now, [], new)
        self.refused_hash = digest
        self.last_errors = errors
        return ReloadResult("refused", digest, now, list(errors), self.current)

