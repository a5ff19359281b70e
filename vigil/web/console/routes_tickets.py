"""Console routes: the ticket queue and ticket work, rule / delivery / survey health, the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from alerts.store.models import StaffAudit, Ticket
from tickets.lifecycle import RESOLUTION_CODES
from tickets.surveys import ticket_ref
from vigil.web.console.charts import by_id
from vigil.web.console.core import HEADERS, PREFIX, Console
from vigil.web.console.health import dead_letters, delivery_charts, rule_charts, survey_charts, survey_comments
from vigil.web.console.routes_main import labels

MOVES = ("ack", "ask_user", "close", "reopen")


def router(c: Console) -> APIRouter:
    r = APIRouter(prefix=PREFIX, include_in_schema=False)
    app = c.app

    # -- tickets ------------------------------------------------------------------------------------
    @r.get("/tickets", response_class=HTMLResponse)
    def tickets(request: Request, queue: str = "", status: str = "", priority: str = "", sla: str = "",
                assignee: str = "", flagged: str = "", active: str = "1", page: int = 1) -> HTMLResponse:
        from tickets.queries import FilterError, TicketFilter, list_tickets

        c.staff(request)
        f = TicketFilter(queue=[queue] if queue else [], status=[status] if status else [],
                         priority=[priority] if priority else [], sla=[sla] if sla else [],
                         assignee=assignee or None, active=active == "1")
        error = None
        with app.sessions() as s:
            try:
                got = list_tickets(s, f, page=max(1, page), per_page=c.cfg.page_size)
            except FilterError as e:
                error, got = str(e), None
            items = got.items if got else []
            flags = {t.id: (t.sentiment, t.sentiment_flag) for t in s.scalars(
                select(Ticket).where(Ticket.id.in_([i["id"] for i in items])))} if items else {}
            queues = sorted(str(q) for q in s.scalars(select(Ticket.queue).distinct()))
        for i in items:
            i["ref"] = ticket_ref(i["id"])
            i["sentiment"], i["flag"] = flags.get(i["id"], (None, None))
        if flagged == "1":
            items = [i for i in items if i["flag"]]
        from urllib.parse import urlencode

        q = {"queue": queue, "status": status, "priority": priority, "sla": sla, "assignee": assignee,
             "flagged": flagged, "active": active}
        return c.page(request, "tickets.html", items=items, page=got, error=error, queues=queues, q=q,
                      qs=urlencode({k: v for k, v in q.items() if v}))

    @r.get("/tickets/{ticket_id}", response_class=HTMLResponse)
    def ticket(request: Request, ticket_id: str) -> HTMLResponse:
        from alerts.store.models import Survey
        from tickets.queries import show_ticket

        c.staff(request)
        with app.sessions() as s:
            data = show_ticket(s, ticket_id)
            row = s.get(Ticket, ticket_id)
            surveys = list(s.scalars(select(Survey).where(Survey.ticket_id == ticket_id)))
            queues = sorted(getattr(s.info.get("ticket_policy"), "queues", {}) or [])
        if data is None or row is None:
            return c.page(request, "error.html", status=404, message_key="console.not_found", role="")
        return c.page(request, "ticket.html", d=data, row=row, ref=ticket_ref(row.id), codes=RESOLUTION_CODES,
                      moves=MOVES, surveys=surveys, queues=queues, msg=request.query_params.get("msg"))

    def act(request: Request, who: Any, ticket_id: str, action: str, fn: Any, *args: Any, **kw: Any) -> Response:
        from tickets.core import TicketError
        from tickets.lifecycle import TicketStateError

        try:
            with app.sessions.begin() as s:
                fn(s, ticket_id, *args, now=app.clock(), actor=who.actor, **kw)
                c.audit(s, request, who, action, "ticket", ticket_id,
                        **{k: v for k, v in kw.items() if isinstance(v, str)}, args=[str(a) for a in args])
        except (TicketError, TicketStateError, ValueError) as e:
            from urllib.parse import quote

            return c.back(f"{PREFIX}/tickets/{ticket_id}?msg={quote(str(e)[:200])}")
        return c.back(f"{PREFIX}/tickets/{ticket_id}?msg=ok")

    @r.post("/tickets/{ticket_id}/assign")
    def assign(request: Request, ticket_id: str, assignee: str = Form(""), queue: str = Form(""),
               csrf: str = Form("")) -> Response:
        from tickets.core import assign as do_assign

        who = c.staff(request)
        c.check_csrf(request, csrf)
        c.need(who, "analyst")
        to = (assignee.strip() or who.username)[:128]
        return act(request, who, ticket_id, "ticket_assign", do_assign, to, queue=queue or None)

    @r.post("/tickets/{ticket_id}/resolve")
    def resolve(request: Request, ticket_id: str, code: str = Form(""), note: str = Form(""),
                csrf: str = Form("")) -> Response:
        from tickets.core import resolve as do_resolve

        who = c.staff(request)
        c.check_csrf(request, csrf)
        c.need(who, "analyst")
        return act(request, who, ticket_id, "ticket_resolve", do_resolve, code, note=note[:2000])

    @r.post("/tickets/{ticket_id}/move")
    def move(request: Request, ticket_id: str, event: str = Form(""), note: str = Form(""),
             csrf: str = Form("")) -> Response:
        from tickets.core import transition

        who = c.staff(request)
        c.check_csrf(request, csrf)
        c.need(who, "analyst")
        if event not in MOVES:
            return c.back(f"{PREFIX}/tickets/{ticket_id}?msg=unknown")
        return act(request, who, ticket_id, f"ticket_{event}", transition, event, note=note[:2000])

    # -- health pages -------------------------------------------------------------------------------
    def charts(page: str, s: Any, loc: str) -> list[Any]:
        lab = labels(loc)
        if page == "rules":
            return rule_charts(s, labels=lab)
        if page == "delivery":
            return delivery_charts(s, labels=lab)
        if page == "surveys":
            return survey_charts(s, labels=lab)
        return []

    @r.get("/rules", response_class=HTMLResponse)
    def rules(request: Request) -> HTMLResponse:
        who = c.staff(request)
        with app.sessions() as s:
            cs = charts("rules", s, who.locale)
        return c.page(request, "health.html", charts=cs, page_key="rules")

    @r.get("/delivery", response_class=HTMLResponse)
    def delivery(request: Request) -> HTMLResponse:
        who = c.staff(request)
        with app.sessions() as s:
            cs = charts("delivery", s, who.locale)
            dead = dead_letters(s)
        return c.page(request, "health.html", charts=cs, page_key="delivery", dead=dead,
                      msg=request.query_params.get("msg"))

    @r.post("/delivery/retry/{outbox_id}")
    def retry(request: Request, outbox_id: str, csrf: str = Form("")) -> Response:
        from delivery.dead_letters import RetryRefused, retry_dead_letter

        who = c.staff(request)
        c.check_csrf(request, csrf)
        c.need(who, "analyst")
        try:
            with app.sessions.begin() as s:
                new_id = retry_dead_letter(s, outbox_id, now=app.clock(), actor=who.actor)
                c.audit(s, request, who, "dead_letter_retry", "outbox", outbox_id, new_id=new_id)
        except RetryRefused:
            return c.back(f"{PREFIX}/delivery?msg=refused")
        return c.back(f"{PREFIX}/delivery?msg=retried")

    @r.get("/surveys", response_class=HTMLResponse)
    def surveys(request: Request) -> HTMLResponse:
        who = c.staff(request)
        with app.sessions() as s:
            cs = charts("surveys", s, who.locale)
            comments = survey_comments(s)
        return c.page(request, "health.html", charts=cs, page_key="surveys", comments=comments)

    @r.get("/{page}/{chart_id}.csv")
    def csv(request: Request, page: str, chart_id: str) -> Response:
        who = c.staff(request)
        with app.sessions.begin() as s:
            chart = by_id(charts(page, s, who.locale), chart_id)
            if chart is not None:
                c.audit(s, request, who, "csv_download", page, chart_id)
        if chart is None:
            return Response("not found", status_code=404, headers=HEADERS)
        return Response(chart.csv(), media_type="text/csv; charset=utf-8",
                        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{chart.id}.csv"'})

    @r.get("/audit", response_class=HTMLResponse)
    def audit_log(request: Request, actor: str = "", action: str = "") -> HTMLResponse:
        who = c.staff(request)
        c.need(who, "admin")
        q = select(StaffAudit).order_by(StaffAudit.at.desc(), StaffAudit.id.desc()).limit(300)
        if actor:
            q = q.where(StaffAudit.actor == actor)
        if action:
            q = q.where(StaffAudit.action == action)
        with app.sessions() as s:
            rows = list(s.scalars(q))
        return c.page(request, "audit.html", rows=rows, q={"actor": actor, "action": action})

    return r
