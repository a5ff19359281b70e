"""The push-action endpoint: the app's "It was me" / "Not me" buttons on a security notification.

The push data message carries ``alert_id``, ``actions`` and a ``token``: a confirmation token
like a link's (>= 128 random bits, stored as SHA-256 only, single use, expiring, bound to one
alert and account).  The app posts it back::

    POST /push/action  {"token": "...", "action": "deny", "alert_id": "a_..."}

No cookie is involved, so there is nothing for a cross-site request to ride on; the token is the
authentication.  The answer goes through ``alerts.answers.answer``, so "not me" freezes once and
opens one ticket however many times and by whichever channels it arrives, and wins over an
earlier "it was me" (from this token or any other) until its deadline.  "It was me" closes the
alert only if the rule lets push confirm and the device was not changed lately; otherwise it is
recorded (``outcome: unverified``).  The app may retry a request it never saw answered: the same
token with the same action gets the same 200 again.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool

from alerts.answers import answer, deny_deadline
from alerts.store.models import AlertRow, ConfirmToken
from alerts.tokens import hash_token
from vigil.bootstrap import App

PATH = "/push/action"
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class PushAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=16, max_length=256)
    action: Literal["confirm", "deny"]
    alert_id: str | None = Field(default=None, max_length=64)


def _json(code: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=code, headers=HEADERS)


def act(app: App, req: PushAction) -> tuple[int, dict[str, Any]]:
    """Apply one push action; (HTTP status, JSON body)."""
    now = app.clock()
    with app.sessions.begin() as s:
        tok = s.get(ConfirmToken, hash_token(req.token))
        alert = s.get(AlertRow, tok.alert_id) if tok is not None else None
        if tok is None or alert is None or (req.alert_id is not None and req.alert_id != tok.alert_id):
            return 404, {"error": "unknown token"}
        if tok.used_action in ("deny", "superseded") or (tok.used_action == "confirm" and req.action == "confirm"):
            repeat = tok.used_action == req.action or (req.action == "deny" and alert.status == "denied")
            if repeat:
                return 200, {"applied": False, "status": alert.status, "message": "already answered"}
            return 410, {"error": "token already used", "status": alert.status}
        deadline = deny_deadline(s, alert, tok.expires_at)
        if deadline is not None and deadline <= now:
            return 410, {"error": "token expired", "status": alert.status}
        # a token answers once -- except that "not me" may follow its own "it was me"
        used = s.execute(update(ConfirmToken)
                         .where(ConfirmToken.token_hash == tok.token_hash,
                                ConfirmToken.used_at.is_(None) | (ConfirmToken.used_action == "confirm"))
                         .values(used_at=now, used_action=req.action))
        if used.rowcount != 1:  # type: ignore[attr-defined]  # a concurrent request won the race
            return 409, {"error": "answered concurrently; retry to see the result"}
        res = answer(s, alert.id, req.action, channel=f"push:{tok.channel}", now=now, actor="push",
                     token_expiry=tok.expires_at)
        if res.outcome == "late" and req.action == "deny":
            return 410, {"error": "token expired", "status": alert.status}
        return 200, {"applied": res.applied, "status": res.status, "message": res.message, "outcome": res.outcome}


def router(app: App) -> APIRouter:
    """Mount with ``api.include_router(push_actions.router(app))``."""
    api = APIRouter()

    @api.post(PATH)
    async def push_action(req: PushAction) -> JSONResponse:
        code, body = await run_in_threadpool(act, app, req)
        return _json(code, body)

    return api
