"""Console routes: sign-in, language, static files, the alert queue and detail, account timelines.

Reads need a signed-in staff member (any role); every POST checks the form's CSRF token and the
role, runs one service function and writes its audit row in the same transaction.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from notifiers.catalogue import N_
from vigil.staff import authenticate, close_session, open_session
from vigil.web.console.core import COOKIE, HEADERS, LANGS, PRE_COOKIE, PREFIX, Console, pick_lang, t
from vigil.web.console.queries import AlertFilter, account_story, alert_detail, alert_queue

STATIC = Path(__file__).with_name("static")
STATIC_FILES = {"console.js": "text/javascript", "console.css": "text/css"}

# table headings of the plots' table views (``console.col.<column>``)
COLUMNS = ("day", "rule_id", "alerts", "asked", "confirmed", "denied", "no_answer", "confirm_share", "deny_share",
           "no_answer_share", "labelled", "tp", "fp", "precision", "live", "shadow", "suppressed",
           "channel_provider", "channel", "provider", "messages", "sent", "delivered", "failed", "median_latency_s",
           "p95_latency_s", "queue", "category", "agent", "answered", "response_rate", "mean_score", "satisfied",
           "unhappy", "place", "lat", "lon", "logins", "last_login")
COLUMN_KEYS = (
    N_("console.col.day"), N_("console.col.rule_id"), N_("console.col.alerts"), N_("console.col.asked"),
    N_("console.col.confirmed"), N_("console.col.denied"), N_("console.col.no_answer"),
    N_("console.col.confirm_share"), N_("console.col.deny_share"), N_("console.col.no_answer_share"),
    N_("console.col.labelled"), N_("console.col.tp"), N_("console.col.fp"), N_("console.col.precision"),
    N_("console.col.live"), N_("console.col.shadow"), N_("console.col.suppressed"),
    N_("console.col.channel_provider"), N_("console.col.channel"), N_("console.col.provider"),
    N_("console.col.messages"), N_("console.col.sent"), N_("console.col.delivered"), N_("console.col.failed"),
    N_("console.col.median_latency_s"), N_("console.col.p95_latency_s"), N_("console.col.queue"),
    N_("console.col.category"), N_("console.col.agent"), N_("console.col.answered"),
    N_("console.col.response_rate"), N_("console.col.mean_score"), N_("console.col.satisfied"),
    N_("console.col.unhappy"), N_("console.col.place"), N_("console.col.lat"), N_("console.col.lon"),
    N_("console.col.logins"), N_("console.col.last_login"),
    N_("console.chart.alerts_per_day"), N_("console.chart.answer_shares"), N_("console.chart.precision"),
    N_("console.chart.shadow_live"), N_("console.chart.delivery"), N_("console.chart.latency"),
    N_("console.chart.by_queue"), N_("console.chart.by_category"), N_("console.chart.by_agent"),
    N_("console.chart.logins"),
)
CHARTS = ("alerts_per_day", "answer_shares", "precision", "shadow_live", "delivery", "latency", "by_queue",
          "by_category", "by_agent", "logins")


def labels(loc: str) -> dict[str, str]:
    """Column headings and chart titles in ``loc``."""
    out = {c: t(loc, f"console.col.{c}") for c in COLUMNS}
    out.update({f"chart_{c}": t(loc, f"console.chart.{c}") for c in CHARTS})
    return out


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def router(c: Console) -> APIRouter:
    r = APIRouter(prefix=PREFIX, include_in_schema=False)
    app = c.app

    # -- static -------------------------------------------------------------------------------------
    @r.get("/static/plotly.min.js")
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @r.get("/static/topojson/{name}")
    def topojson(name: str) -> Response:
        if name != "world_110m.json":
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(STATIC / "topojson" / name, media_type="application/json",
                            headers={"Cache-Control": "max-age=86400"})

    @r.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=300"})

    # -- sign in / out, language --------------------------------------------------------------------
    @r.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = PREFIX + "/", lang: str | None = None) -> HTMLResponse:
        pre = c.pre_token(request)
        loc = lang if lang in LANGS else pick_lang(request.headers.get("accept-language"))
        resp = c.page(request, "login.html", lang=loc, pre=pre, next=next, error=False)
        c.set_cookie(resp, PRE_COOKIE, pre, max_age=3600)
        return resp

    @r.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: str = Form(""), password: str = Form(""), pre: str = Form(""),
              next: str = Form(PREFIX + "/"), lang: str = Form("en")) -> Response:
        cookie = request.cookies.get(PRE_COOKIE)
        now = app.clock()
        loc = lang if lang in LANGS else "en"
        if not cookie or not secrets.compare_digest(cookie, pre):
            return c.page(request, "login.html", status=400, lang=loc, pre=c.pre_token(request), next=next,
                          error=True)
        with app.sessions.begin() as s:
            who = authenticate(s, username, password, now=now, ip=request.client.host if request.client else None)
            token = open_session(s, who, now=now, absolute=timedelta(hours=c.cfg.session_hours)) if who else None
        if token is None:
            return c.page(request, "login.html", status=401, lang=loc, pre=cookie, next=next, error=True)
        resp = c.back(next)
        c.set_cookie(resp, COOKIE, token)
        resp.delete_cookie(PRE_COOKIE, path=PREFIX)
        return resp

    @r.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        who = c.staff(request)
        c.check_csrf(request, csrf)
        with app.sessions.begin() as s:
            close_session(s, request.cookies.get(COOKIE), now=app.clock())
            c.audit(s, request, who, "logout", "staff", who.username)
        resp = c.back(PREFIX + "/login")
        resp.delete_cookie(COOKIE, path=PREFIX)
        return resp

    @r.post("/locale")
    def set_locale(request: Request, lang: str = Form("en"), csrf: str = Form(""), back: str = Form("")) -> Response:
        from alerts.store.models import StaffUser

        who = c.staff(request)
        c.check_csrf(request, csrf)
        if lang in LANGS:
            with app.sessions.begin() as s:
                user = s.get(StaffUser, who.id)
                if user is not None:
                    user.locale = lang
                c.audit(s, request, who, "set_locale", "staff", who.username, locale=lang)
        return c.back(back or PREFIX + "/")

    @r.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        c.staff(request)
        return c.back(PREFIX + "/alerts")

    # -- alerts -------------------------------------------------------------------------------------
    @r.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request, rule: str = "", severity: str = "", status: str = "", locale: str = "",
               segment: str = "", acked: str = "", page: int = 1) -> HTMLResponse:
        c.staff(request)
        f = AlertFilter(rule, severity, status, locale, segment, acked)
        with app.sessions() as s:
            data = alert_queue(s, f, page=page, per_page=c.cfg.page_size)
        return c.page(request, "alerts.html", f=f, data=data, done=request.query_params.get("done"))

    @r.post("/alerts/ack")
    async def ack(request: Request) -> Response:
        from alerts.actions import acknowledge

        who = c.staff(request)
        form = await request.form()
        c.check_csrf(request, str(form.get("csrf", "")))
        c.need(who, "analyst")
        ids = [str(v) for v in form.getlist("alert_id")][:500]
        with app.sessions.begin() as s:
            done = acknowledge(s, ids, now=app.clock(), actor=who.actor)
            c.audit(s, request, who, "alerts_acknowledge", "alert", ",".join(done)[:128], alert_ids=done)
        back = str(form.get("back", "")) or PREFIX + "/alerts"
        return c.back(back + ("&" if "?" in back else "?") + f"done={len(done)}")

    @r.get("/alerts/{alert_id}", response_class=HTMLResponse)
    def alert(request: Request, alert_id: str) -> HTMLResponse:
        c.staff(request)
        with app.sessions() as s:
            data = alert_detail(s, alert_id)
        if data is None:
            return c.page(request, "error.html", status=404, message_key="console.not_found", role="")
        return c.page(request, "alert.html", d=data)

    # -- accounts -----------------------------------------------------------------------------------
    @r.get("/accounts", response_class=HTMLResponse)
    def account_search(request: Request, q: str = "") -> Response:
        c.staff(request)
        return c.back(f"{PREFIX}/accounts/{q.strip()}" if q.strip() else PREFIX + "/alerts")

    @r.get("/accounts/{account_id}", response_class=HTMLResponse)
    def account(request: Request, account_id: str) -> HTMLResponse:
        who = c.staff(request)
        with app.sessions() as s:
            data = account_story(s, account_id, engine_source=app.settings.source.kind == "engine")
        if data is None:
            return c.page(request, "error.html", status=404, message_key="console.not_found", role="")
        data["map"] = _relabel(data["map"], who.locale)
        return c.page(request, "account.html", d=data, chart=data["map"], msg=request.query_params.get("msg"))

    @r.get("/accounts/{account_id}/logins-map.csv")
    def account_csv(request: Request, account_id: str) -> Response:
        who = c.staff(request)
        with app.sessions.begin() as s:
            data = account_story(s, account_id, engine_source=app.settings.source.kind == "engine")
            c.audit(s, request, who, "csv_download", "account", account_id, chart="logins-map")
        body = data["map"].csv() if data else ""
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="logins-{account_id[:60]}.csv"'})

    @r.post("/accounts/{account_id}/freeze")
    def freeze(request: Request, account_id: str, reason: str = Form(""), csrf: str = Form("")) -> Response:
        from alerts.actions import freeze_account

        who = c.staff(request)
        c.check_csrf(request, csrf)
        c.need(who, "analyst")
        reason = reason.strip()
        if len(reason) < 5:
            return c.back(f"{PREFIX}/accounts/{account_id}?msg=reason_needed")
        with app.sessions.begin() as s:
            done = freeze_account(s, account_id, now=app.clock(), reason=f"staff {who.username}: {reason}",
                                  actor=who.actor)
            c.audit(s, request, who, "freeze", "account", account_id, reason=reason, changed=done)
        return c.back(f"{PREFIX}/accounts/{account_id}?msg={'frozen' if done else 'already_frozen'}")

    @r.post("/accounts/{account_id}/unfreeze")
    def unfreeze(request: Request, account_id: str, reason: str = Form(""), csrf: str = Form("")) -> Response:
        from alerts.accounts import AccountError, unfreeze_account
        from tickets.surveys import release_held

        who = c.staff(request)
        c.check_csrf(request, csrf)
        c.need(who, "admin")
        if not reason.strip():
            return c.back(f"{PREFIX}/accounts/{account_id}?msg=reason_needed")
        try:
            with app.sessions.begin() as s:  # the same service as `vigil accounts unfreeze` (audited there too)
                now = app.clock()
                unfreeze_account(s, account_id, now=now, reason=reason, actor=who.actor)
                released = release_held(s, now=now, account_id=account_id)
                c.audit(s, request, who, "unfreeze", "account", account_id, reason=reason.strip(), changed=True,
                        surveys_released=released)
            done = True
        except AccountError:  # not frozen (or unknown): nothing changed
            done = False
        return c.back(f"{PREFIX}/accounts/{account_id}?msg={'unfrozen' if done else 'not_frozen'}")

    return r


def _relabel(chart, loc: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    lab = labels(loc)
    return replace(chart, title=lab.get(chart.title, chart.title), labels=lab)
