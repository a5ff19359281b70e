"""``/api/suppressions``: the exchange's backend declares an account holder's travel notice or
allow-listed address.  Protected by its own named bearer tokens (``web.suppression_tokens``), not
the staff API's: the feed can declare suppressions and nothing else.  ``created_by`` is the acting
token's name (``api:<name>``); a body that names someone is refused."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException

from alerts.suppressions import SuppressionIn, add_suppression, as_dict, end_suppression, list_suppressions
from vigil.bootstrap import App
from vigil.web.credentials import Credentials


def suppression_credentials(app: App) -> Credentials:
    return Credentials(app.settings.web.suppression_tokens, what="suppressions API",
                       setting="web.suppression_tokens")


def router(app: App) -> APIRouter:
    creds = suppression_credentials(app)

    def authorised(authorization: str | None = Header(None)) -> str:
        return creds.who(authorization)

    api = APIRouter(prefix="/api/suppressions", tags=["suppressions"], dependencies=[Depends(authorised)])

    @api.post("", status_code=201)
    def create(body: SuppressionIn, name: str = Depends(authorised)) -> dict[str, Any]:
        if "created_by" in body.model_fields_set:
            raise HTTPException(422, "created_by is taken from the bearer token's name, not the request")
        body = body.model_copy(update={"created_by": f"api:{name}"})
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
