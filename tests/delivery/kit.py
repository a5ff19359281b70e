"""Fakes at the ports for the delivery tests: a recording channel and hand-built alerts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.outbox import enqueue_notifications
from alerts.store.models import AccountRow, AlertRow, OutboxRow
from detectors.base import stable_id
from notifiers.base import Channel, DeliveryResult, Message

T0 = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)
Script = Callable[[Message], DeliveryResult]


class Recording(Channel):
    """Records every message; answers ``sent`` with a fresh provider id unless scripted."""

    needs: ClassVar[str | None] = None

    def __init__(self, name: str, needs: str | None = None, script: Script | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.needs = needs  # type: ignore[misc]
        self.script = script
        self.sent: list[Message] = []
        self._lock = threading.Lock()

    def send(self, message: Message) -> DeliveryResult:
        with self._lock:
            self.sent.append(message)
            n = len(self.sent)
        if self.script is not None:
            return self.script(message)
        return DeliveryResult("sent", provider_id=f"{self.name.upper()}{n:04d}{uuid.uuid4().hex}")


def channels(**scripts: Script | None) -> dict[str, Recording]:
    needs = {"sms": "phone", "push": "push_token", "email": "email"}
    names = ["sms", "push", "email", *[k for k in scripts if k not in needs]]
    return {n: Recording(n, needs.get(n), scripts.get(n)) for n in names}


def render(template: str, channel: str, locale: str, context: Any) -> Any:
    from notifiers.render import render as real

    return real(template, channel, locale, context)


def account(s: Session, account_id: str = "A1", *, phone: str | None = "+821055550001", locale: str = "en",
            email: str | None = "a1@example.com", push_token: str | None = "tok-a1") -> AccountRow:
    acct = s.get(AccountRow, account_id)
    if acct is None:
        acct = AccountRow(account_id=account_id, phone=phone, email=email, push_token=push_token,
                          locale=locale, timezone="Asia/Seoul", status="active", updated_at=T0)
        s.add(acct)
        s.flush()
    return acct


def alert(s: Session, n: int = 1, *, account_id: str = "A1", channels: Iterable[str] = ("sms",),
          strategy: str = "all", confirm: bool = True, severity: str = "high", now: datetime = T0,
          sms_code: str | None = None, expires: timedelta = timedelta(minutes=30),
          on_expired: list[dict[str, Any]] | None = None, enqueue: bool = True) -> AlertRow:
    """A ``login-new-country`` alert as the stage would write it, with its outbox rows."""
    chans = list(channels)
    aid = stable_id("a", "test", account_id, str(n))
    row = AlertRow(
        id=aid, rule_id="login-new-country", detector="new_location", account_id=account_id,
        severity=severity, status="new", ts=now - timedelta(minutes=1), finding_ids=[f"f{n}"],
        event_ids=[f"e{n}"], evidence={"kind": "country", "country": "BR", "city": "Sao Paulo",
                                        "ip": "200.1.1.1", "device_id": "evil"},
        template="new_location", channels=chans, confirm=confirm, sms_code=sms_code or f"{4000 + n}",
        expires_at=now + expires if confirm else None, created_at=now, updated_at=now,
        plan={"notify": {"channels": chans, "template": "new_location", "confirm": confirm,
                         "expires_s": int(expires.total_seconds()), "strategy": strategy},
              "on_denied": [{"type": "freeze", "scope": "account"},
                            {"type": "ticket", "category": "account_security", "priority": "P1"}],
              "on_confirmed": [],
              "on_expired": on_expired if on_expired is not None
              else [{"type": "ticket", "category": "account_security", "priority": "P2"}]},
    )
    s.add(row)
    s.flush()
    if enqueue:
        enqueue_notifications(s, row, now=now)
    return row


def outbox(s: Session, **where: Any) -> list[OutboxRow]:
    q = select(OutboxRow)
    for k, v in where.items():
        q = q.where(getattr(OutboxRow, k) == v)
    return list(s.scalars(q.order_by(OutboxRow.created_at, OutboxRow.id)))
