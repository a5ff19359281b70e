"""Declaring user suppressions (store side): travel notices and allow-listed withdrawal addresses.

The account holder declares them in the exchange's app; the exchange's backend forwards them to
Vigil (``POST /api/suppressions``) or staff add them (``vigil suppressions add``).  Each one has an
expiry, is scoped to one account, and is audited: the row records who declared it and when, and
every alert it mutes records the suppression's id (``alerts.stage``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.store.models import Suppression

MAX_DAYS = 180  # like Marble's rule snoozes: never open-ended


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: str = Field(min_length=1, max_length=128)
    kind: Literal["travel", "address"]
    countries: list[str] | None = Field(None, description="travel: ISO 3166-1 alpha-2 codes")
    address: str | None = Field(None, max_length=256, description="address: the allow-listed address")
    network: str | None = Field(None, max_length=32)
    starts_at: datetime
    expires_at: datetime
    created_by: str = Field("user", max_length=128)

    @field_validator("countries")
    @classmethod
    def _countries(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        out = [c.strip().upper() for c in v]
        bad = [c for c in out if len(c) != 2 or not c.isalpha()]
        if bad:
            raise ValueError(f"countries must be ISO 3166-1 alpha-2 codes like 'JP'; got {bad}")
        return out

    @model_validator(mode="after")
    def _shape(self) -> SuppressionIn:
        if self.starts_at.tzinfo is None or self.expires_at.tzinfo is None:
            raise ValueError("starts_at and expires_at need a UTC offset, e.g. 2026-12-01T00:00:00Z")
        if self.expires_at <= self.starts_at:
            raise ValueError("expires_at must be after starts_at")
        if self.expires_at - self.starts_at > timedelta(days=MAX_DAYS):
            raise ValueError(f"a suppression lasts at most {MAX_DAYS} days")
        if self.kind == "travel" and not self.countries:
            raise ValueError("a travel notice names its countries")
        if self.kind == "address" and not self.address:
            raise ValueError("an address suppression names the address")
        return self

    def value(self) -> dict[str, Any]:
        if self.kind == "travel":
            return {"countries": self.countries}
        return {"address": self.address, **({"network": self.network} if self.network else {})}


def add_suppression(session: Session, spec: SuppressionIn, *, now: datetime) -> Suppression:
    row = Suppression(account_id=spec.account_id, kind=spec.kind, value=spec.value(), starts_at=spec.starts_at,
                      expires_at=spec.expires_at, created_by=spec.created_by, created_at=now)
    session.add(row)
    session.flush()
    return row


def end_suppression(session: Session, suppression_id: int, *, now: datetime) -> Suppression | None:
    """End it now (the row stays, for audit)."""
    row = session.get(Suppression, suppression_id)
    if row is not None and row.expires_at > now:
        row.expires_at = now
    return row


def list_suppressions(session: Session, account_id: str | None = None, *, active_at: datetime | None = None
                      ) -> list[Suppression]:
    q = select(Suppression).order_by(Suppression.id)
    if account_id:
        q = q.where(Suppression.account_id == account_id)
    if active_at is not None:
        q = q.where(Suppression.expires_at > active_at)
    return list(session.scalars(q))


def as_dict(row: Suppression) -> dict[str, Any]:
    return {"id": row.id, "account_id": row.account_id, "kind": row.kind, "value": row.value,
            "starts_at": row.starts_at.isoformat(), "expires_at": row.expires_at.isoformat(),
            "created_by": row.created_by, "created_at": row.created_at.isoformat()}
