"""The staff JSON API for tickets: list (paginated, filterable), show (with timeline), assign, resolve.

Protected by named bearer tokens from settings (``web.staff_tokens: {name: token}``, each at least
32 characters; :mod:`vigil.web.credentials`).  With no token configured the API answers 503 rather
than being open.  The timeline records the acting token's *name* (``staff:alice``) -- a request
body cannot claim to be someone else.

The lead mounts it: ``api.include_router(staff_router(app))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from vigil.bootstrap import App
from vigil.web.credentials import Credentials


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignBody(_Body):
    assignee: str | None = Field(None, max_length=128, description="null unassigns")
    queue: str | None = Field(None, max_length=64)


class ResolveBody(_Body):
    code: Literal["false_positive", "valuable", "risk_confirmed"]
    note: str = Field("", max_length=2000)


class MoveBody(_Body):
    event: Literal["ack", "ask_user", "user_reply", "close", "reopen"]
    note: str = Field("", max_length=2000)


def staff_credentials(app: App, tokens: Mapping[str, Any] | None = None) -> Credentials:
    return Credentials(tokens if tokens is not None else app.settings.web.staff_tokens, what="staff API",
                       setting="web.staff_tokens")


def staff_router(app: App, *, token: str | None = None, tokens: Mapping[str, Any] | None = None,
                 prefix: str = "/staff/api") -> APIRouter:
    """The router; ``tokens`` (or one ``token``, named ``staff``) override the settings (tests, a secret store).

    The ticket policy comes with ``app.sessions`` (wired by ``vigil.bootstrap``), as everywhere.
    """
    creds = staff_credentials(app, {"staff": token} if token else tokens)

    def who(authorization: str | None = Header(None)) -> str:
        return creds.who(authorization)

    router = APIRouter(prefix=prefix, tags=["staff"], dependencies=[Depends(who)])

    def actor(name: str) -> str:
        return f"staff:{name}"

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
    def assign_(ticket_id: str, body: AssignBody, name: str = Depends(who)) -> dict[str, Any]:
        from tickets.core import assign

        return act(assign, ticket_id, body.assignee, actor=actor(name), queue=body.queue)

    @router.post("/tickets/{ticket_id}/resolve")
    def resolve_(ticket_id: str, body: ResolveBody, name: str = Depends(who)) -> dict[str, Any]:
        from tickets.core import resolve

        return act(resolve, ticket_id, body.code, actor=actor(name), note=body.note)

    @router.post("/tickets/{ticket_id}/move")
    def move_(ticket_id: str, body: MoveBody, name: str = Depends(who)) -> dict[str, Any]:
        from tickets.core import transition

        return act(transition, ticket_id, body.event, actor=actor(name), note=body.note)

    return router
