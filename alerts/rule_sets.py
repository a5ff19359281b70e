"""The audit trail of rule sets: one ``vigil_rule_sets`` row per applied or refused set.

Kept out of :mod:`rules.reload` so the rules package never touches the store; the daemon records
each :class:`rules.reload.ReloadResult` here, and ``/metrics`` counts the rows.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from alerts.store.models import RuleSetRow
from rules.errors import RuleError
from rules.loader import RuleSet
from rules.reload import ReloadResult


def record_rule_set(
    session: Session,
    *,
    path: str | Path,
    status: Literal["applied", "refused"],
    content_hash: str,
    at: datetime,
    rule_set: RuleSet | None = None,
    errors: list[RuleError] | None = None,
) -> RuleSetRow:
    """Add one ``vigil_rule_sets`` row to ``session`` (the caller commits) and return it."""
    row = RuleSetRow(
        content_hash=content_hash,
        path=str(path),
        status=status,
        rules=rule_set.summary() if rule_set is not None and status == "applied" else [],
        errors=[e.as_dict() for e in errors or []],
        at=at,
    )
    session.add(row)
    return row


def record_result(session: Session, path: str | Path, result: ReloadResult) -> RuleSetRow | None:
    """Record a reload result that changed something; ``unchanged`` writes nothing."""
    if result.status == "unchanged":
        return None
    return record_rule_set(
        session,
        path=path,
        status=result.status,
        content_hash=result.content_hash,
        at=result.at,
        rule_set=result.rule_set,
        errors=result.errors,
    )
