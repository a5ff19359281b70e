"""Read side of the console's working pages: the alert queue, one alert, one account's story.

Plain SQLAlchemy selects over the engine's tables (and, for an account's logins, transfers and
positions, the canonical source tables that ``vigil import`` and the embedded source fill).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.store.models import (
    SOURCE_MODELS,
    AccountRow,
    AlertEvent,
    AlertRow,
    Delivery,
    OutboxRow,
    StaffAudit,
    Survey,
    Ticket,
)
from tickets.surveys import ticket_ref
from vigil.web.console.charts import Chart, Plot

SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("new", "notified", "confirmed", "denied", "expired", "escalated", "closed", "shadow", "suppressed")


@dataclass(frozen=True)
class AlertFilter:
    rule: str = ""
    severity: str = ""
    status: str = ""
    locale: str = ""
    segment: str = ""
    acked: str = ""  # "", "yes", "no"

    def query_string(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in self.__dict__.items() if v})


@dataclass
class AlertPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    choices: dict[str, list[str]] = field(default_factory=dict)


def alert_queue(s: Session, f: AlertFilter, *, page: int, per_page: int) -> AlertPage:
    acked = select(AlertEvent.alert_id).where(AlertEvent.event == "acknowledged")
    q = select(AlertRow, AccountRow.locale, AccountRow.tier).join(
        AccountRow, AccountRow.account_id == AlertRow.account_id, isouter=True)
    if f.rule:
        q = q.where(AlertRow.rule_id == f.rule)
    if f.severity:
        q = q.where(AlertRow.severity == f.severity)
    if f.status:
        q = q.where(AlertRow.status == f.status)
    if f.locale:
        q = q.where(AccountRow.locale == f.locale)
    if f.segment:
        q = q.where(AccountRow.tier == f.segment)
    if f.acked == "yes":
        q = q.where(AlertRow.id.in_(acked))
    elif f.acked == "no":
        q = q.where(AlertRow.id.not_in(acked))
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    got = s.execute(q.order_by(AlertRow.ts.desc(), AlertRow.id).offset((page - 1) * per_page).limit(per_page)).all()
    ids = [a.id for a, _, _ in got]
    by: dict[str, list[str]] = {}
    if ids:
        for aid, actor in s.execute(select(AlertEvent.alert_id, AlertEvent.actor).where(
                AlertEvent.alert_id.in_(ids), AlertEvent.event == "acknowledged")):
            by.setdefault(aid, []).append(actor.removeprefix("staff:"))
    rows = [{"id": a.id, "ts": a.ts, "rule_id": a.rule_id, "severity": a.severity, "status": a.status,
             "mode": a.mode, "account_id": a.account_id, "locale": loc or "", "tier": tier or "",
             "answer": a.answer, "ticket_id": a.ticket_id, "acked_by": by.get(a.id, [])} for a, loc, tier in got]
    choices = {
        "rule": sorted(str(x) for x in s.scalars(select(AlertRow.rule_id).distinct())),
        "locale": sorted(str(x) for x in s.scalars(select(AccountRow.locale).distinct()) if x),
        "segment": sorted(str(x) for x in s.scalars(select(AccountRow.tier).distinct()) if x),
        "severity": list(SEVERITIES), "status": list(STATUSES),
    }
    return AlertPage(rows, int(total), page, pages, choices)


def alert_detail(s: Session, alert_id: str) -> dict[str, Any] | None:
    a = s.get(AlertRow, alert_id)
    if a is None:
        return None
    events = list(s.scalars(select(AlertEvent).where(AlertEvent.alert_id == a.id)
                            .order_by(AlertEvent.at, AlertEvent.id)))
    messages = []
    for o in s.scalars(select(OutboxRow).where(OutboxRow.alert_id == a.id)
                       .order_by(OutboxRow.created_at, OutboxRow.id)):
        attempts = list(s.scalars(select(Delivery).where(Delivery.outbox_id == o.id)
                                  .order_by(Delivery.at, Delivery.id)))
        messages.append({"row": o, "attempts": attempts})
    answer_ev = next((e for e in events if e.event in ("answer_confirm", "answer_deny")), None)
    return {"alert": a, "events": events, "messages": messages, "account": s.get(AccountRow, a.account_id),
            "answer_channel": (answer_ev.detail or {}).get("channel") if answer_ev else None,
            "answer_by": answer_ev.actor if answer_ev else None,
            "ticket": s.get(Ticket, a.ticket_id) if a.ticket_id else None}


# -- one account's story ----------------------------------------------------------------------------
def _source_rows(s: Session, table: str, account_id: str, limit: int = 500) -> list[dict[str, Any]]:
    model: Any = SOURCE_MODELS[table]
    cols = [c.name for c in model.__table__.columns if c.name != "ingest_seq"]
    rows = s.execute(select(model).where(model.account_id == account_id)
                     .order_by(model.ts.desc(), model.ingest_seq.desc()).limit(limit)).scalars()
    return [{c: getattr(r, c) for c in cols} for r in rows]


def account_story(s: Session, account_id: str, *, engine_source: bool) -> dict[str, Any] | None:
    acct = s.get(AccountRow, account_id)
    alerts = list(s.scalars(select(AlertRow).where(AlertRow.account_id == account_id).order_by(AlertRow.ts.desc())))
    if acct is None and not alerts:
        return None
    logins = _source_rows(s, "logins", account_id) if engine_source else []
    transfers = _source_rows(s, "transactions", account_id) if engine_source else []
    positions = _source_rows(s, "positions", account_id) if engine_source else []
    security = _source_rows(s, "security_events", account_id) if engine_source else []
    tickets = list(s.scalars(select(Ticket).where(Ticket.account_id == account_id).order_by(Ticket.created_at.desc())))
    alert_ids = [a.id for a in alerts]
    freezes: list[dict[str, Any]] = []
    if alert_ids:
        for ev in s.scalars(select(AlertEvent).where(AlertEvent.alert_id.in_(alert_ids),
                                                     AlertEvent.event.like("actions_%"))):
            if "freeze" in (ev.detail or {}).get("done", []):
                freezes.append({"at": ev.at, "what": "freeze", "by": ev.actor, "why": f"alert {ev.alert_id}"})
    for au in s.scalars(select(StaffAudit).where(StaffAudit.target_kind == "account",
                                                 StaffAudit.target_id == account_id,
                                                 StaffAudit.action.in_(("freeze", "unfreeze")))):
        freezes.append({"at": au.at, "what": au.action, "by": au.actor, "why": (au.detail or {}).get("reason", "")})
    freezes.sort(key=lambda f: f["at"], reverse=True)
    answers = [a for a in alerts if a.answer]
    surveys = list(s.scalars(select(Survey).where(Survey.account_id == account_id).order_by(Survey.created_at.desc())))
    timeline: list[tuple[str, str, str]] = []
    for lg in logins:
        failed = "" if str(lg.get("success")).lower() in ("true", "1") else " (failed)"
        timeline.append((str(lg["ts"]), "login",
                         f"{lg.get('city') or ''} {lg.get('country') or ''} {lg.get('ip') or ''}{failed}"))
    for tx in transfers:
        timeline.append((str(tx["ts"]), "transfer", f"{tx.get('kind')} {tx.get('amount')} {tx.get('asset')}"
                         f"{' → ' + str(tx['address']) if tx.get('address') else ''}"))
    for p in positions:
        timeline.append((str(p["ts"]), "position",
                         f"{p.get('symbol')} {p.get('leverage')}x margin {p.get('margin_ratio')}"))
    for e in security:
        timeline.append((str(e["ts"]), "security", str(e.get("kind"))))
    for a in alerts:
        timeline.append((_iso(a.ts), "alert", f"{a.rule_id} ({a.severity}, {a.status})"))
        if a.answer and a.answered_at:
            timeline.append((_iso(a.answered_at), "answer", f"{a.answer} · {a.rule_id}"))
    for f in freezes:
        timeline.append((_iso(f["at"]), f["what"], f"{f['by']}: {f['why']}"))
    for tk in tickets:
        timeline.append((_iso(tk.created_at), "ticket", f"{ticket_ref(tk.id)} {tk.priority} {tk.subject}"))
    timeline.sort(key=lambda x: _sortable(x[0]), reverse=True)
    return {"account": acct, "account_id": account_id, "alerts": alerts, "logins": logins, "transfers": transfers,
            "positions": positions, "security": security, "tickets": tickets, "freezes": freezes,
            "answers": answers, "surveys": surveys, "timeline": timeline[:400], "engine_source": engine_source,
            "map": login_map(logins)}


def login_map(logins: list[dict[str, Any]]) -> Chart:
    """Logins with coordinates, one row per place (count, last seen), for the world plot."""
    places: dict[tuple[float, float], dict[str, Any]] = {}
    for lg in logins:
        try:
            lat, lon = float(lg.get("lat") or ""), float(lg.get("lon") or "")
        except ValueError:
            continue
        key = (round(lat, 3), round(lon, 3))
        p = places.setdefault(key, {"place": f"{lg.get('city') or '?'}, {lg.get('country') or '?'}", "logins": 0,
                                    "failed": 0, "last": ""})
        p["logins"] += 1
        p["failed"] += str(lg.get("success")).lower() not in ("true", "1")
        p["last"] = max(p["last"], str(lg.get("ts") or ""))
    rows = [(v["place"], k[0], k[1], v["logins"], v["failed"], v["last"]) for k, v in
            sorted(places.items(), key=lambda kv: -kv[1]["logins"])]
    return Chart("logins-map", "chart_logins", ("place", "lat", "lon", "logins", "failed", "last_login"), rows,
                 Plot("geo", text="place"))


def _iso(dt: Any) -> str:
    from datetime import UTC

    if dt is None:
        return ""
    return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sortable(ts: str) -> str:
    """Source timestamps are ISO text of various shapes; compare them on their first 19 characters."""
    return ts.replace(" ", "T")[:19]
