"""What the account holder sees of their requests: the survey page and in-app messages.

``GET /s/{token}`` shows the one-question survey (1-5, an optional comment, "don't ask me again")
in the holder's language with the exchange's branding; only the form's ``POST``, carrying a form
token bound to the link (HMAC, as on the confirmation page), answers it, once.  A strongly
negative comment reopens the request and the thank-you page says so, with its reference.

``POST /api/messages`` (a named bearer token of ``web.message_tokens``) is how the exchange's backend forwards a
message the holder wrote in the app: it opens or joins a classified ticket, scores its sentiment
(a furious message raises the priority), queues an acknowledgement by push with the ticket
reference, and returns the acknowledgement text for the app to show in the holder's language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Header, HTTPException
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field

from alerts.store.models import AccountRow
from alerts.tokens import csrf_for, csrf_ok
from notifiers.catalogue import N_, catalogue_locale, fill, lookup
from vigil.bootstrap import App
from vigil.web.credentials import Credentials

SECURITY_HEADERS = {  # as on the confirmation page
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'",
}

_env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                   autoescape=select_autoescape(["html"]))
PAGE_KEYS = (N_("survey.page_title"), N_("survey.question"), N_("survey.score_1"), N_("survey.score_2"),
             N_("survey.score_3"), N_("survey.score_4"), N_("survey.score_5"), N_("survey.comment_label"),
             N_("survey.opt_out_label"), N_("survey.submit"), N_("survey.thanks"), N_("survey.thanks_reopened"),
             N_("survey.gone"), N_("survey.thanks_sms"), N_("survey.bad"))


class InAppMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=4000)
    locale: str | None = Field(None, max_length=16)
    message_id: str | None = Field(None, max_length=128, description="the app's id: a replay does nothing twice")


def strings(locale: str | None, **values: Any) -> tuple[str, dict[str, str]]:
    loc = catalogue_locale(locale)
    return loc, {k.removeprefix("survey."): fill(lookup(loc, k), values, k, missing="") for k in PAGE_KEYS}


def ack_text(locale: str | None, ref: str, brand: str) -> str:
    """The acknowledgement of a holder's message, in their language (the SMS wording)."""
    loc = catalogue_locale(locale)
    return fill(lookup(loc, "ticket_ack.sms"), {"ref": ref, "brand": brand}, "ticket_ack.sms")


def message_credentials(app: App) -> Credentials:
    """The exchange's backend forwards the holder's in-app messages with one of these named tokens."""
    return Credentials(app.settings.web.message_tokens, what="messages API", setting="web.message_tokens")


def router(app: App) -> APIRouter:
    api = APIRouter()
    secret = app.settings.web.secret_key.get_secret_value()
    brand = app.settings.branding

    def page(status: int = 200, **kw: Any) -> HTMLResponse:
        html = _env.get_template("survey.html").render(brand=brand, **kw)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    @api.get("/s/{token}", response_class=HTMLResponse)
    def show(token: str) -> HTMLResponse:
        from tickets.surveys import QUEUED, by_token, ticket_ref

        now = app.clock()
        with app.sessions() as s:
            sv = by_token(s, token)
            loc, st = strings(sv.locale if sv else None, ref=ticket_ref(sv.ticket_id) if sv else "")
            if sv is None or sv.status != QUEUED or _aware(sv.expires_at) <= now:
                return page(410 if sv else 404, state="gone", lang=loc, s=st)
            return page(state="ask", lang=loc, s=st, action=f"/s/{token}", csrf=csrf_for(secret, "survey:" + token))

    @api.post("/s/{token}", response_class=HTMLResponse)
    def submit(token: str, score: int = Form(0), comment: str = Form(""), opt_out: str = Form(""),
               csrf: str = Form("")) -> HTMLResponse:
        from tickets.surveys import SurveyError, answer, by_token, ticket_ref

        now = app.clock()
        with app.sessions.begin() as s:
            sv = by_token(s, token)
            loc, st = strings(sv.locale if sv else None, ref=ticket_ref(sv.ticket_id) if sv else "")
            if sv is None:
                return page(404, state="gone", lang=loc, s=st)
            if not csrf_ok(secret, "survey:" + token, csrf) or not 1 <= score <= 5:
                return page(400, state="gone", lang=loc, s={**st, "gone": st["bad"]})
            try:
                got = answer(s, sv, score, comment, now=now, channel="link", opt_out=bool(opt_out))
            except SurveyError:
                return page(410, state="gone", lang=loc, s=st)
            return page(state="done", lang=loc, s=st, reopened=got.reopened)

    creds = message_credentials(app)

    def authorised(authorization: str | None = Header(None)) -> str:
        return creds.who(authorization)

    @api.post("/api/messages", status_code=201, dependencies=[Depends(authorised)], tags=["messages"])
    def in_app(body: InAppMessage) -> dict[str, Any]:
        from tickets.core import open_from_text
        from tickets.surveys import queue_ack, ticket_ref

        now = app.clock()
        with app.sessions.begin() as s:
            acct = s.get(AccountRow, body.account_id)
            if acct is None:
                raise HTTPException(404, f"no account {body.account_id!r}")
            locale = body.locale or acct.locale or app.settings.default_locale
            got = open_from_text(s, body.account_id, body.text, locale, now, channel="app", ref_id=body.message_id)
            ref_id = body.message_id or f"app:{now.isoformat()}"
            queue_ack(s, got.ticket, channel="push" if acct.push_token else "email", ref_id=ref_id, now=now)
            t = got.ticket
            return {"ticket_id": t.id, "ref": ticket_ref(t.id), "priority": t.priority, "queue": t.queue,
                    "category": t.category, "sentiment": t.sentiment, "flag": t.sentiment_flag,
                    "acknowledgement": ack_text(locale, ticket_ref(t.id), brand.name)}

    return api


def _aware(dt: Any) -> Any:
    from datetime import UTC

    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
