"""The staff JSON API for tickets: list (paginated, filterable), show (with timeline), assign, resolve.

Protected by one bearer token from settings (``web.staff_token``; compared in constant time).  With
no token configured the API answers 503 rather than being open.  Staff name themselves in the
request body (``actor``) so the timeline says who acted; the token says they may.

The lead mounts it: ``api.include_router(staff_router(app))``.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from vigil.bootstrap import App


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str | None = Field(None, max_length=100, description="who is acting; recorded on the timeline")


class AssignBody(_Body):
    assignee: str | None = Field(None, max_length=128, description="null unassigns")
    queue: str | None = Field(None, max_length=64)


class ResolveBody(_Body):
    code: Literal["false_positive", "valuable", "risk_confirmed"]
    note: str = Field("", max_length=2000)


class MoveBody(_Body):
    event: Literal["ack", "ask_user", "user_reply", "close", "reopen"]
    note: str = Field("", max_length=2000)


def _staff_token(app: App) -> str | None:
    tok = getattr(app.settings.web, "staff_token", None)
    if tok is None:
        return None
    value = tok.get_secret_value() if hasattr(tok, "get_secret_value") else str(tok)
    return value or None


def staff_router(app: App, *, token: str | None = None, prefix: str = "/staff/api") -> APIRouter:
    """The router; ``token`` overrides the settings (tests, or a token from a secret store).

    The ticket policy comes with ``app.sessions`` (wired by ``vigil.bootstrap``), as everywhere.
    """
    secret = token or _staff_token(app)

    def who(authorization: str | None = Header(None)) -> None:
        if not secret:
            raise HTTPException(503, "staff API disabled: set web.staff_token (VIGIL_WEB__STAFF_TOKEN)")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), secret.encode()):
            raise HTTPException(401, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix=prefix, tags=["staff"], dependencies=[Depends(who)])

    def actor(body: _Body) -> str:
        return f"staff:{body.actor}" if body.actor else "staff:api"

    def act(fn: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        from tickets.core import TicketError, TicketNotFound
        from tickets.lifecycle import TicketStateError
        from tickets.queries import ticket_dict

        try:
            with app.sessions.begin() as s:
                return ticket_dict(fn(s, *args, now=app.clock(), **kw))
        except TicketNotFound as e:
            raise HTTPException(404, str(e)) from None
        except (TicketError, TicketStateError) as e:
            raise HTTPException(409, str(e)) from None
        except ValueError as e:
            raise HTTPException(422, str(e)) from None

    @router.get("/tickets")
    def list_(
        queue: list[str] = Query([]), status: list[str] = Query([]), priority: list[str] = Query([]),
        sla: list[str] = Query([]), category: list[str] = Query([]), account: str | None = None,
        assignee: str | None = None, active: bool = False, page: int = Query(1, ge=1),
        per_page: int = Query(50, ge=1, le=200),
    ) -> dict[str, Any]:
        from tickets.queries import FilterError, TicketFilter, list_tickets

        f = TicketFilter(queue=queue, status=status, priority=priority, sla=sla, category=category,
                         account=account, assignee=assignee, active=active)
        try:
            with app.sessions() as s:
                return list_tickets(s, f, page=page, per_page=per_page).as_dict()
        except FilterError as e:
            raise HTTPException(422, str(e)) from None

    @router.get("/tickets/{ticket_id}")
    def show(ticket_id: str) -> dict[str, Any]:
        from tickets.queries import show_ticket

        with app.sessions() as s:
            data = show_ticket(s, ticket_id)
        if data is None:
            raise HTTPException(404, f"no ticket {ticket_id!r}")
        return data

    @router.post("/tickets/{ticket_id}/assign")
    def assign_(ticket_id: str, body: AssignBody) -> dict[str, Any]:
        from tickets.core import assign

        return act(assign, ticket_id, body.assignee, actor=actor(body), queue=body.queue)

    @router.post("/tickets/{ticket_id}/resolve")
    def resolve_(ticket_id: str, body: ResolveBody) -> dict[str, Any]:
        from tickets.core import resolve

        return act(resolve, ticket_id, body.code, actor=actor(body), note=body.note)

    @router.post("/tickets/{ticket_id}/move")
    def move_(ticket_id: str, body: MoveBody) -> dict[str, Any]:
        from tickets.core import transition

        return act(transition, ticket_id, body.event, actor=actor(body), note=body.note)

    return router
