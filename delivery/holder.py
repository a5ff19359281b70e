"""What a message to the holder about their request carries beyond an alert: the ticket reference,
the survey's single-use link or SMS code, and the exchange's branding.

The survey link's token is issued here, when the message is composed -- like a confirmation link
(``Deliverer._issue_token``) -- so the database only ever holds its SHA-256 (``vigil_surveys``);
a message composed again (a retry, a fallback to another channel) gets a fresh link and the old
one stops working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from alerts.store.models import OutboxRow, Survey
from alerts.tokens import hash_token, new_token

HOLDER_PURPOSES = frozenset({"survey", "ticket_ack"})


def brand_context(settings: Any) -> dict[str, Any]:
    """``brand`` and ``brand_color`` from the settings' ``branding`` section, if it has one."""
    branding = getattr(settings, "branding", None)
    return branding.context() if branding is not None and hasattr(branding, "context") else {}


def holder_context(s: Session, row: OutboxRow, base_url: str, now: datetime) -> dict[str, Any]:
    payload = row.payload or {}
    out: dict[str, Any] = {"ticket_ref": payload.get("ticket_ref")}
    if row.purpose != "survey":
        return out
    survey = s.get(Survey, str(payload.get("survey_id", "")))
    if survey is None:
        return out
    if row.channel == "sms":
        out["sms_code"] = survey.sms_code
    else:
        token = new_token()
        survey.token_hash = hash_token(token)
        out["link"] = f"{base_url.rstrip('/')}/s/{token}"
    return out
