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

from alerts.answers import answer
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
_env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                   autoescape=select_autoescape(["html"]))


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def headline(alert: AlertRow, acct: AccountRow | None, lang: str) -> str:
    """The alert's localised one-line summary (the email subject), e.g. "New sign-in from Brazil"."""
    from notifiers.render import render

    context = {
        "alert": {"id": alert.id, "rule_id": alert.rule_id, "detector": alert.detector,
                  "kind": (alert.evidence or {}).get("kind", ""), "severity": alert.severity, "ts": alert.ts,
                  "evidence": dict(alert.evidence or {})},
        "account": {"account_id": alert.account_id, "locale": lang,
                    "timezone": acct.timezone if acct else None, "anti_phishing_code": None},
        "link": None, "sms_code": None, "expires_at": None, "brand": "Vigil",
    }
    try:
        return str(render(alert.template or "security_alert", "email", lang, context).subject)
    except Exception:  # an unknown template must not hide the page; the rule id still says what it is
        return alert.rule_id


def evidence_rows(alert: AlertRow, s: dict[str, str], tz: str | None, what: str) -> list[tuple[str, str]]:
    from babel.dates import format_datetime

    ev = alert.evidence or {}
    rows: list[tuple[str, str]] = [(s["what"], what)]
    ts = _aware(alert.ts)
    if ts is not None:
        try:
            from zoneinfo import ZoneInfo

            when = format_datetime(ts, "medium", tzinfo=ZoneInfo(tz or "UTC"), locale=(s.get("_babel") or "en"))
        except Exception:
            when = ts.isoformat()
        rows.append((s["when"], f"{when} ({tz or 'UTC'})"))
    place = ", ".join(str(x) for x in (ev.get("city"), ev.get("country")) if x)
    if place:
        rows.append((s["where"], place))
    for key in ("device_id", "ip"):
        if ev.get(key):
            rows.append((s["device" if key == "device_id" else "ip"], str(ev[key])))
    if ev.get("amount") is not None:
        usd = f" (≈ {ev['amount_usd']:,.2f} USD)" if isinstance(ev.get("amount_usd"), int | float) else ""
        rows.append((s["amount"], f"{ev['amount']} {ev.get('asset', '')}{usd}"))
    if ev.get("address"):
        rows.append((s["address"], str(ev["address"])))
    if ev.get("symbol"):
        rows.append((s["symbol"], str(ev["symbol"])))
    if ev.get("leverage") is not None and alert.detector.endswith("leverage"):
        rows.append((s["leverage"], f"{ev['leverage']:g}x"))
    if ev.get("margin_ratio") is not None:
        rows.append((s["margin_ratio"], f"{ev['margin_ratio']:.0%}"))
    return rows


def create_app(app: App) -> FastAPI:
    api = FastAPI(title="Vigil", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    secret = app.settings.web.secret_key.get_secret_value()

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
            if tok.used_at is not None or (_aware(tok.expires_at) or now) <= now:
                return page("gone", lang, s, 410, message=s["gone"])
            s = {**s, "_babel": lang.replace("-", "_").replace("zh_CN", "zh_Hans_CN").replace("zh_TW", "zh_Hant_TW")}
            rows = evidence_rows(alert, s, acct.timezone if acct else None, headline(alert, acct, lang))
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
            used = session.execute(
                update(ConfirmToken)
                .where(ConfirmToken.token_hash == tok.token_hash, ConfirmToken.used_at.is_(None),
                       ConfirmToken.expires_at > now)
                .values(used_at=now, used_action=answer_)
                .execution_options(synchronize_session=False)
            )
            if used.rowcount != 1:  # type: ignore[attr-defined]
                return page("gone", lang, s, 410, message=s["gone"])
            answer(session, alert.id, answer_, channel=f"link:{tok.channel}", now=now)
            if answer_ == "deny":
                session.flush()
                return denied(session, alert, acct, lang, s)
            return page("done", lang, s, message=s["done_yes"])

    @api.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        with app.sessions() as session:
            session.execute(select(1))
        return "ok"

    from vigil.web.metrics import exposition, registry_for

    registry = registry_for(app)

    @api.get("/metrics")
    def metrics() -> Response:
        body, content_type = exposition(registry)
        return Response(body, media_type=content_type)

    from vigil.web import push_actions, suppressions, twilio_hooks
    from vigil.web.staff import staff_router

    api.include_router(staff_router(app))
    api.include_router(twilio_hooks.router(app))
    api.include_router(push_actions.router(app))
    api.include_router(suppressions.router(app))
    from vigil.web import console, holder

    console.mount(api, app)  # the staff console at /console
    api.include_router(holder.router(app))  # survey page, in-app messages
    return api
