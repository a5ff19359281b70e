"""The confirmation page after "not me": what happened (account frozen, the request's reference),
what to do next, and how support will contact the holder -- in their language, branded.

Split from ``vigil/web/app.py`` so that the confirmation handlers stay the trust work's, and this
view stays small.  The exchange's logo is served from ``branding.logo_path`` at ``/brand/logo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from alerts.store.models import AccountRow, AlertRow, Ticket
from notifiers.branding import LOGO_TYPES
from notifiers.catalogue import N_, fill, lookup

KEYS = (N_("page.denied_title"), N_("page.denied_frozen"), N_("page.denied_not_frozen"), N_("page.denied_ref"),
        N_("page.denied_next_title"), N_("page.denied_step1"), N_("page.denied_step2"), N_("page.denied_step3"),
        N_("page.denied_contact"), N_("page.denied_hours"))


def denied_view(session: Session, alert: AlertRow, acct: AccountRow | None, lang: str, brand: Any) -> dict[str, Any]:
    from tickets.surveys import ticket_ref

    ticket = session.get(Ticket, alert.ticket_id) if alert.ticket_id else None
    ref = ticket_ref(ticket.id) if ticket is not None else None
    values = {"brand": brand.name, "ref": ref or "", "hours": brand.support_hours}
    d = {k.removeprefix("page.denied_"): fill(lookup(lang, k), values, k, missing="") for k in KEYS}
    frozen = acct is not None and acct.status == "frozen"
    return {"d": d, "frozen": frozen, "ref": ref, "hours": bool(brand.support_hours)}


def logo_response(path: str | None) -> Response:
    if not path:
        return PlainTextResponse("no logo configured", status_code=404)
    p = Path(path)
    kind = LOGO_TYPES.get(p.suffix.lower())
    if kind is None or not p.is_file():
        return PlainTextResponse("logo not found", status_code=404)
    return FileResponse(p, media_type=kind, headers={"Cache-Control": "max-age=3600",
                                                     "X-Content-Type-Options": "nosniff",
                                                     "Content-Security-Policy": "default-src 'none'"})
