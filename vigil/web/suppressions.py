"""``/api/suppressions``: the exchange's backend declares an account holder's travel notice or
allow-listed address.  Protected by the staff bearer token (``web.staff_token``)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException

from alerts.suppressions import SuppressionIn, add_suppression, as_dict, end_suppression, list_suppressions
from vigil.bootstrap import App


def router(app: App) -> APIRouter:
    secret = app.settings.web.staff_token.get_secret_value()

    def authorised(authorization: str | None = Header(None)) -> None:
        if not secret:
            raise HTTPException(503, "suppressions API disabled: set web.staff_token (VIGIL_WEB__STAFF_TOKEN)")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), secret.encode()):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api/suppressions", tags=["suppressions"], dependencies=[Depends(authorised)])

    @api.post("", status_code=201)
    def create(body: SuppressionIn) -> dict[str, Any]:
        with app.sessions.begin() as s:
            return as_dict(add_suppression(s, body, now=app.clock()))

    @api.get("")
    def index(account_id: str | None = None, active: bool = True) -> dict[str, Any]:
        with app.sessions() as s:
            rows = list_suppressions(s, account_id, active_at=app.clock() if active else None)
            return {"items": [as_dict(r) for r in rows]}

    @api.delete("/{suppression_id}")
    def end(suppression_id: int) -> dict[str, Any]:
        with app.sessions.begin() as s:
            row = end_suppression(s, suppression_id, now=app.clock())
            if row is None:
                raise HTTPException(404, f"no suppression {suppression_id}")
            return as_dict(row)

    return api
