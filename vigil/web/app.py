"""The web side: confirmation pages ("was this you?"), health and metrics.

GET only ever shows a page -- mail scanners follow links and must change nothing; only a POST
from a button, carrying a form token bound to the link, acts.  Link tokens are looked up by their
SHA-256, are single use, expire, and are bound to one alert and account.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select, update

from alerts.answers import answer, deny_deadline
from alerts.store.models import AccountRow, AlertRow, ConfirmToken
from alerts.tokens import csrf_for, csrf_ok, hash_token
from vigil.bootstrap import App
from vigil.web.i18n import pick

SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'",
}
SPENT = ("deny", "superseded")  # a link used for "not me", or made void by an answer elsewhere
_env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                   autoescape=select_autoescape(["html"]))


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def _message_context(alert: AlertRow, acct: AccountRow | None, lang: str) -> dict[str, Any]:
    """What the message renderer needs to describe this alert (no link, no code: the page asks itself)."""
    return {
        "alert": {"id": alert.id, "rule_id": alert.rule_id, "detector": alert.detector,
                  "kind": (alert.evidence or {}).get("kind", ""), "severity": alert.severity, "ts": alert.ts,
                  "evidence": dict(alert.evidence or {})},
        "account": {"account_id": alert.account_id, "locale": (acct.locale if acct else None) or lang,
                    "timezone": acct.timezone if acct else None, "anti_phishing_code": None},
        "link": None, "sms_code": None, "expires_at": None, "brand": "Vigil",
    }


def headline(alert: AlertRow, acct: AccountRow | None, lang: str) -> str:
    """The alert's localised one-line summary (the email subject), e.g. "New sign-in from Brazil"."""
    from notifiers.render import render

    try:
        return str(render(alert.template or "security_alert", "email", lang, _message_context(alert, acct, lang))
                   .subject)
    except Exception:  # an unknown template must not hide the page; the rule id still says what it is
        return alert.rule_id


def evidence_rows(alert: AlertRow, acct: AccountRow | None, lang: str, what_label: str) -> list[tuple[str, str]]:
    """What happened, then the rows of the user's email, formatted by the same code (notifiers.render):
    time with the UTC offset, place, device, amounts in the user's locale."""
    from notifiers.render import evidence_rows as message_rows

    rows = [(what_label, headline(alert, acct, lang))]
    try:
        rows += message_rows(alert.template or "security_alert", (acct.locale if acct else None) or lang,
                             _message_context(alert, acct, lang))
    except Exception:  # the page must still let the user answer
        pass
    return rows


def create_app(app: App) -> FastAPI:
    """The public application.  With ``web.internal_port`` set, ``/metrics`` and ``/openapi.json`` are
    not on it (see :func:`create_internal_app`); else ``web.metrics_token``, when set, guards them."""
    web = app.settings.web
    internal = web.internal_port is not None
    api = FastAPI(title="Vigil", docs_url=None, redoc_url=None, openapi_url=None if internal else "/openapi.json")
    secret = web.secret_key.get_secret_value()

    brand = app.settings.branding

    def page(state: str, lang: str, s: dict[str, str], status: int = 200, **kw: Any) -> HTMLResponse:
        html = _env.get_template("confirm.html").render(state=state, lang=lang, s=s, brand=brand,
                                                        logo=bool(brand.logo_path), **kw)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def denied(session: Any, alert: AlertRow, acct: AccountRow | None, lang: str, s: dict[str, str],
               status: int = 200) -> HTMLResponse:
        """After "not me": what happened and what comes next, never the question again (a link of a
        denied alert is still gone, 410, but says so)."""
        from vigil.web.after_deny import denied_view

        return page("denied", lang, s, status, **denied_view(session, alert, acct, lang, brand))

    @api.get("/brand/logo")
    def logo() -> Response:
        from vigil.web.after_deny import logo_response

        return logo_response(brand.logo_path)

    def lookup(session: Any, token: str) -> tuple[ConfirmToken | None, AlertRow | None, AccountRow | None]:
        row = session.get(ConfirmToken, hash_token(token))
        if row is None:
            return None, None, None
        return row, session.get(AlertRow, row.alert_id), session.get(AccountRow, row.account_id)

    @api.get("/c/{token}", response_class=HTMLResponse)
    def show(token: str) -> HTMLResponse:
        now = app.clock()
        with app.sessions() as session:
            tok, alert, acct = lookup(session, token)
            lang, s = pick(acct.locale if acct else None)
            if tok is None or alert is None:
                return page("gone", lang, s, 404, message=s["gone"])
            if alert.status == "denied" and alert.answer == "deny":  # already said "not me": say what happened
                return denied(session, alert, acct, lang, s, 410)
            deadline = deny_deadline(session, alert, tok.expires_at)
            if tok.used_action in SPENT or (deadline is not None and deadline <= now):
                return page("gone", lang, s, 410, message=s["gone"])
            rows = evidence_rows(alert, acct, lang, s["what"])
            return page("ask", lang, s, rows=rows,
                        apc=acct.anti_phishing_code if acct else None, csrf=csrf_for(secret, token),
                        action=f"/c/{token}")

    @api.post("/c/{token}", response_class=HTMLResponse)
    def act(token: str, answer_: str = Form(..., alias="answer"), csrf: str = Form("")) -> HTMLResponse:
        now = app.clock()
        with app.sessions.begin() as session:
            tok, alert, acct = lookup(session, token)
            lang, s = pick(acct.locale if acct else None)
            if tok is None or alert is None:
                return page("gone", lang, s, 404, message=s["gone"])
            if answer_ not in ("confirm", "deny") or not csrf_ok(secret, token, csrf):
                return page("gone", lang, s, 400, message=s["bad"])
            # a link answers once -- except that "not me" may follow its own "it was me"
            used = session.execute(
                update(ConfirmToken)
                .where(ConfirmToken.token_hash == tok.token_hash,
                       ConfirmToken.used_at.is_(None) | (ConfirmToken.used_action == "confirm"))
                .values(used_at=now, used_action=answer_)
                .execution_options(synchronize_session=False)
            )
            if used.rowcount != 1:  # type: ignore[attr-defined]
                if answer_ == "deny" and alert.status == "denied":  # already frozen by another answer
                    return denied(session, alert, acct, lang, s)
                return page("gone", lang, s, 410, message=s["gone"])
            res = answer(session, alert.id, answer_, channel=f"link:{tok.channel}", now=now,
                         token_expiry=tok.expires_at)
            if answer_ == "deny":
                if res.outcome in ("deny", "repeat"):
                    session.flush()
                    return denied(session, alert, acct, lang, s)
                return page("gone", lang, s, 410, message=s["gone"])
            # "it was me": the same link can still say "not me" while the deny deadline lasts
            message = {"confirm": s["done_yes"], "repeat": s["done_yes"], "unverified": s["noted"],
                       "late": s["late"]}.get(res.outcome, s["gone"])
            return page("done", lang, s, message=message, csrf=csrf_for(secret, token), action=f"/c/{token}",
                        deny_form=res.outcome in ("confirm", "repeat", "unverified", "late"))

    @api.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        with app.sessions() as session:
            session.execute(select(1))
        return "ok"

    if not internal:
        @api.get("/metrics")
        def metrics() -> Response:
            return metrics_response(app)

    from vigil.web import push_actions, suppressions, twilio_hooks
    from vigil.web.staff import staff_router

    api.include_router(staff_router(app))
    api.include_router(twilio_hooks.router(app))
    api.include_router(push_actions.router(app))
    api.include_router(suppressions.router(app))
    from vigil.web import console, holder

    console.mount(api, app)  # the staff console at /console
    api.include_router(holder.router(app))  # survey page, in-app messages
    guard(api, app, metrics_open=internal)
    return api


def guard(api: FastAPI, app: App, *, metrics_open: bool = False) -> None:
    """Request limits and early credential checks (:mod:`vigil.web.limits`) for this application."""
    from vigil.web.credentials import Credentials
    from vigil.web.holder import message_credentials
    from vigil.web.limits import FORM, JSON, RequestGuard, Route
    from vigil.web.staff import staff_credentials
    from vigil.web.suppressions import suppression_credentials

    web = app.settings.web
    routes = [
        Route("/c/", FORM),
        Route("/twilio/", FORM, header="x-twilio-signature"),
        Route("/push/action", JSON),
        Route("/staff/api", JSON, auth=staff_credentials(app)),
        Route("/api/suppressions", JSON, auth=suppression_credentials(app)),
        Route("/api/messages", JSON, auth=message_credentials(app)),
    ]
    metrics = Credentials({"metrics": web.metrics_token}, what="metrics", setting="web.metrics_token")
    if metrics.enabled and not metrics_open:
        routes += [Route("/metrics", JSON, auth=metrics), Route("/openapi.json", JSON, auth=metrics)]
    api.add_middleware(RequestGuard, max_body=web.max_body_bytes, routes=routes)  # type: ignore[arg-type]


def create_internal_app(app: App, public: FastAPI) -> FastAPI:
    """The internal listener (``web.internal_host:internal_port``): metrics, the OpenAPI document of
    the public application, and health -- for scrapers on the private network only."""
    api = FastAPI(title="Vigil (internal)", docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/metrics")
    def metrics() -> Response:
        return metrics_response(app)

    @api.get("/openapi.json")
    def openapi() -> dict[str, Any]:
        return public.openapi()

    @api.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        with app.sessions() as session:
            session.execute(select(1))
        return "ok"

    guard(api, app, metrics_open=True)
    return api


def metrics_response(app: App) -> Response:
    """Prometheus exposition of what the store records (so ``vigil serve`` reports what ``vigil run`` did)."""
    from vigil.web.metrics import exposition, registry_for

    body, content_type = exposition(registry_for(app))
    return Response(body, media_type=content_type)
