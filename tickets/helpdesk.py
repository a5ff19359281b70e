"""External helpdesks: push Vigil tickets out, pull their status back.

Vigil's own tickets are the record; an exchange that works in Zendesk (or anything that takes a
webhook) gets a copy that stays in step:

* :class:`WebhookExporter` POSTs every ticket change as JSON, signed with HMAC-SHA256 over
  ``"{timestamp}.{body}"`` (header ``X-Vigil-Signature: t=...,v1=...``, Stripe's scheme, so a
  receiver can reject replays by the timestamp).  One way: nothing comes back.
* :class:`ZendeskHelpdesk` uses the Tickets API: ``POST /api/v2/tickets.json`` to create,
  ``PUT /api/v2/tickets/{id}.json`` to update, ``GET /api/v2/tickets.json?external_id=`` to find a
  ticket already created for a Vigil id -- so a push after a crash (created remotely, not yet
  recorded here) updates instead of duplicating.  Status comes back with ``GET
  /api/v2/tickets/{id}.json``; a ``vigil_<code>`` tag on a solved ticket carries the resolution code.

:func:`sync_helpdesk` runs the exchange: changed tickets are pushed (HTTP outside any database
transaction; a short transaction records the result), then remote status changes are applied
through the ticket lifecycle.

    HelpdeskError           a push or pull failed; ``transient`` says whether to retry later
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.models import Ticket, TicketEvent
from tickets.lifecycle import ACTIVE, CLOSED, RESOLUTION_CODES, RESOLVED, can

if TYPE_CHECKING:  # imported when a helpdesk is built: loading settings needs only the models
    import httpx

ZD_PRIORITY = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"}
ZD_STATUS = {"new": "new", "open": "open", "pending_user": "pending", "resolved": "solved",
             "closed": "solved"}
FROM_ZD = {"new": "new", "open": "open", "hold": "open", "pending": "pending_user", "solved": "resolved",
           "closed": "closed"}


class HelpdeskError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


# -- settings (the lead adds ``helpdesk: HelpdeskSettings | None`` to vigil.settings.Settings) ------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZendeskSettings(_Strict):
    kind: Literal["zendesk"] = "zendesk"
    base_url: str = Field(description="https://SUBDOMAIN.zendesk.com")
    email: str = Field(description="the agent whose API token is used")
    api_token: SecretStr
    timeout: float = Field(10.0, gt=0)
    tags: list[str] = Field(default_factory=lambda: ["vigil"])


class WebhookHelpdeskSettings(_Strict):
    kind: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr
    timeout: float = Field(10.0, gt=0)


HelpdeskSettings = ZendeskSettings | WebhookHelpdeskSettings


@dataclass(frozen=True)
class TicketSnapshot:
    """What leaves Vigil about a ticket (no evidence payloads: those stay in Vigil)."""

    id: str
    account_id: str
    category: str
    priority: str
    status: str
    queue: str
    subject: str
    assignee: str | None
    sla_state: str
    resolution_code: str | None
    external_id: str | None
    updated_at: str
    note: str = ""  # new timeline entries since the last push, one per line

    @classmethod
    def of(cls, t: Ticket, note: str = "") -> TicketSnapshot:
        upd = t.updated_at.replace(tzinfo=UTC) if t.updated_at.tzinfo is None else t.updated_at
        return cls(t.id, t.account_id, t.category, t.priority, t.status, t.queue, t.subject, t.assignee,
                   t.sla_state, t.resolution_code, t.external_id, upd.isoformat(), note)


@dataclass(frozen=True)
class RemoteStatus:
    status: str  # in Vigil's vocabulary
    code: str | None = None


class Helpdesk(ABC):
    name: str = "helpdesk"

    @abstractmethod
    def push(self, snap: TicketSnapshot) -> str | None:
        """Create or update the remote ticket; its id (None for one-way exporters)."""

    def pull(self, remote_id: str) -> RemoteStatus | None:
        """The remote status, or None when this helpdesk does not report back."""
        return None

    def close(self) -> None:
        return None


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.status_code < 300:
        return
    transient = resp.status_code == 429 or resp.status_code >= 500
    hint = f"; retry after {resp.headers.get('Retry-After')}s" if resp.headers.get("Retry-After") else ""
    raise HelpdeskError(f"{what}: HTTP {resp.status_code}{hint}: {resp.text[:300]}", transient=transient)


class WebhookExporter(Helpdesk):
    name = "webhook"

    def __init__(self, cfg: WebhookHelpdeskSettings, *, client: httpx.Client | None = None) -> None:
        self.cfg = cfg
        import httpx

        self.client = client or httpx.Client(timeout=cfg.timeout)

    def sign(self, body: bytes, ts: int) -> str:
        mac = hmac.new(self.cfg.secret.get_secret_value().encode(), f"{ts}.".encode() + body, hashlib.sha256)
        return f"t={ts},v1={mac.hexdigest()}"

    def push(self, snap: TicketSnapshot) -> str | None:
        body = json.dumps({"event": "ticket.updated", "ticket": asdict(snap)}, sort_keys=True).encode()
        ts = int(time.time())
        import httpx

        try:
            resp = self.client.post(self.cfg.url, content=body, headers={
                "Content-Type": "application/json", "X-Vigil-Signature": self.sign(body, ts),
                "Idempotency-Key": f"{snap.id}:{snap.updated_at}"})
        except httpx.HTTPError as e:
            raise HelpdeskError(f"webhook {self.cfg.url}: {type(e).__name__}: {e}", transient=True) from None
        _raise_for(resp, f"webhook {self.cfg.url}")
        return None

    def close(self) -> None:
        self.client.close()


class ZendeskHelpdesk(Helpdesk):
    name = "zendesk"

    def __init__(self, cfg: ZendeskSettings, *, client: httpx.Client | None = None) -> None:
        self.cfg = cfg
        token = base64.b64encode(f"{cfg.email}/token:{cfg.api_token.get_secret_value()}".encode()).decode()
        import httpx

        self.client = client or httpx.Client(timeout=cfg.timeout)
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        self.base = cfg.base_url.rstrip("/")

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        import httpx

        url = f"{self.base}{path}"
        try:
            resp = self.client.request(method, url, headers=self.headers, **kw)
        except httpx.HTTPError as e:
            raise HelpdeskError(f"zendesk {method} {path}: {type(e).__name__}: {e}", transient=True) from None
        _raise_for(resp, f"zendesk {method} {path}")
        try:
            data = resp.json()
        except ValueError:
            raise HelpdeskError(f"zendesk {method} {path}: the answer is not JSON", transient=True) from None
        if not isinstance(data, dict):
            raise HelpdeskError(f"zendesk {method} {path}: unexpected answer", transient=False)
        return data

    def _fields(self, snap: TicketSnapshot) -> dict[str, Any]:
        return {"subject": snap.subject, "priority": ZD_PRIORITY.get(snap.priority, "normal"),
                "status": ZD_STATUS[snap.status], "external_id": snap.id,
                "tags": [*self.cfg.tags, snap.category, f"queue_{snap.queue}", f"sla_{snap.sla_state}"]}

    def find(self, vigil_id: str) -> str | None:
        data = self._call("GET", "/api/v2/tickets.json", params={"external_id": vigil_id})
        found = data.get("tickets") or []
        return str(found[0]["id"]) if found else None

    def push(self, snap: TicketSnapshot) -> str | None:
        remote = snap.external_id.split(":", 1)[1] if snap.external_id else self.find(snap.id)
        fields = self._fields(snap)
        if remote is None:
            body = (f"Vigil ticket {snap.id} for account {snap.account_id}: {snap.subject}\n"
                    f"category {snap.category}, priority {snap.priority}, queue {snap.queue}")
            fields["comment"] = {"body": body + (f"\n\n{snap.note}" if snap.note else ""), "public": False}
            data = self._call("POST", "/api/v2/tickets.json", json={"ticket": fields})
            return str(data["ticket"]["id"])
        if snap.note:
            fields["comment"] = {"body": snap.note, "public": False}
        self._call("PUT", f"/api/v2/tickets/{remote}.json", json={"ticket": fields})
        return remote

    def pull(self, remote_id: str) -> RemoteStatus | None:
        t = self._call("GET", f"/api/v2/tickets/{remote_id}.json").get("ticket") or {}
        status = FROM_ZD.get(str(t.get("status")))
        if status is None:
            return None
        code = next((c for c in RESOLUTION_CODES if f"vigil_{c}" in (t.get("tags") or [])), None)
        return RemoteStatus(status, code)

    def close(self) -> None:
        self.client.close()


def build_helpdesk(cfg: HelpdeskSettings, *, client: httpx.Client | None = None) -> Helpdesk:
    if isinstance(cfg, ZendeskSettings):
        return ZendeskHelpdesk(cfg, client=client)
    return WebhookExporter(cfg, client=client)


# -- the sync job ---------------------------------------------------------------------------------
@dataclass
class SyncReport:
    pushed: int = 0
    created: int = 0
    pulled: int = 0
    applied: int = 0
    errors: list[str] = field(default_factory=list)


def _marker(t: Ticket) -> str:
    upd = t.updated_at.replace(tzinfo=UTC) if t.updated_at.tzinfo is None else t.updated_at
    return upd.isoformat()


def _last_export(s: Session, t: Ticket, desk: str) -> TicketEvent | None:
    return s.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == t.id, TicketEvent.kind == "helpdesk_export",
        TicketEvent.actor == f"helpdesk:{desk}",
    ).order_by(TicketEvent.at.desc(), TicketEvent.id.desc())).first()


def _note(s: Session, t: Ticket, since: datetime | None) -> str:
    q = select(TicketEvent).where(TicketEvent.ticket_id == t.id, TicketEvent.kind != "helpdesk_export")
    if since is not None:
        q = q.where(TicketEvent.at > since)
    events = s.scalars(q.order_by(TicketEvent.at, TicketEvent.id))
    lines = [f"{e.at:%Y-%m-%d %H:%M} {e.kind} ({e.actor})" for e in events]
    return "\n".join(lines[-50:])


def _record(s: Session, t: Ticket, desk: str, now: datetime, detail: dict[str, Any]) -> None:
    # written directly, not through add_event: an export must not itself count as a change to export
    s.add(TicketEvent(ticket_id=t.id, at=now, kind="helpdesk_export", actor=f"helpdesk:{desk}",
                      ref_id=f"{desk}:{_marker(t)}", detail=detail))


def sync_helpdesk(sessions: sessionmaker[Session], desk: Helpdesk, now: datetime, *, limit: int = 200
                  ) -> SyncReport:
    """Push changed tickets, then apply remote status changes.  Safe to run again at any time."""
    rep = SyncReport()
    with sessions() as s:
        cands = list(s.scalars(select(Ticket).where((Ticket.status != CLOSED) | Ticket.external_id.is_(None))
                               .order_by(Ticket.updated_at).limit(limit)))
        todo = []
        for t in cands:
            last = _last_export(s, t, desk.name)
            if last is None or last.ref_id != f"{desk.name}:{_marker(t)}":
                todo.append((t.id, TicketSnapshot.of(t, _note(s, t, last.at if last else None))))
    for tid, snap in todo:
        try:
            remote = desk.push(snap)
        except HelpdeskError as e:
            rep.errors.append(f"{tid}: {e}")
            continue
        with sessions.begin() as s:
            row = s.get(Ticket, tid)
            if row is None:
                continue
            t = row
            if remote is not None and t.external_id is None:
                t.external_id = f"{desk.name}:{remote}"
                rep.created += snap.external_id is None
            rep.pushed += 1
            _record(s, t, desk.name, now, {"remote_id": remote, "status": snap.status})
    with sessions() as s:
        linked = [(t.id, t.external_id) for t in s.scalars(select(Ticket).where(
            Ticket.external_id.like(f"{desk.name}:%"), Ticket.status != CLOSED).limit(limit))]
    for tid, ext in linked:
        try:
            remote_status = desk.pull(str(ext).split(":", 1)[1])
        except HelpdeskError as e:
            rep.errors.append(f"{tid}: {e}")
            continue
        rep.pulled += 1
        if remote_status is None:
            continue
        with sessions.begin() as s:
            locked = s.get(Ticket, tid, with_for_update=True)
            if locked is not None and _apply_remote(s, locked, remote_status, now, desk.name):
                rep.applied += 1
                _record(s, locked, desk.name, now, {"pulled": remote_status.status})
    return rep


def _apply_remote(s: Session, t: Ticket, r: RemoteStatus, now: datetime, desk: str) -> bool:
    """Move the ticket to the remote status by the lifecycle's own events; False if nothing to do."""
    from tickets.core import add_event, move

    actor = f"helpdesk:{desk}"
    if r.status == t.status or (r.status == RESOLVED and t.status == CLOSED):
        return False
    if r.status in (RESOLVED, CLOSED) and t.status in ACTIVE:
        move(s, t, "resolve", now=now, actor=actor, detail={"code": r.code})
        t.resolution_code = r.code
        add_event(s, t, "resolved", now=now, ref_id=None, detail={"code": r.code, "by": desk}, actor=actor)
        if r.status == CLOSED:
            move(s, t, "close", now=now, actor=actor)
        return True
    if r.status == CLOSED and t.status == RESOLVED:
        move(s, t, "close", now=now, actor=actor)
        return True
    if t.status == RESOLVED:
        event = "reopen"
    elif t.status == "pending_user":
        event = "user_reply"
    else:
        event = {"open": "ack", "pending_user": "ask_user"}.get(r.status, "")
    if event and can(t.status, event):
        move(s, t, event, now=now, actor=actor)
        return True
    return False
