"""Figures for the health pages: rules, delivery, surveys -- each a :class:`Chart` (table + plot).

Counting is done by the database where it is plain (``GROUP BY``); latencies and shares are
computed here from the grouped rows.  Nothing is sampled: what the plot shows is every row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.outbox import DEAD_LETTERS
from alerts.store.models import AlertRow, Delivery, OutboxRow, Survey
from tickets.feedback import collect, rule_precision
from tickets.surveys import GROUPS, results
from vigil.web.console.charts import Chart, Plot

SENT = ("sent", "delivered", "unconfirmed", "undelivered", "canceled")
FAILED = ("failed", "dead", "undelivered", "canceled")


def rule_charts(s: Session, *, days: int = 30, labels: dict[str, str] | None = None) -> list[Chart]:
    labels = labels or {}
    last = s.scalar(select(func.max(AlertRow.ts)))
    since = (_aware(last) if last else datetime.now(UTC)) - timedelta(days=days)
    day = func.date(AlertRow.ts)
    per_day = [(str(d), str(r), int(n)) for d, r, n in s.execute(
        select(day, AlertRow.rule_id, func.count()).where(AlertRow.ts >= since)
        .group_by(day, AlertRow.rule_id).order_by(day, AlertRow.rule_id))]
    c1 = Chart("alerts-per-day", labels.get("chart_alerts_per_day", "alerts per day"), ("day", "rule_id", "alerts"),
               per_day, Plot("stacked", x="day", y=("alerts",), series="rule_id"), labels)

    asked: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for rule, answer, n in s.execute(select(AlertRow.rule_id, AlertRow.answer, func.count())
                                     .where(AlertRow.confirm.is_(True), AlertRow.mode == "live")
                                     .group_by(AlertRow.rule_id, AlertRow.answer)):
        row = asked[str(rule)]
        row[0] += n
        row[1 if answer == "confirm" else 2 if answer == "deny" else 3] += n
    shares = [(r, v[0], v[1], v[2], v[3], _share(v[1], v[0]), _share(v[2], v[0]), _share(v[3], v[0]))
              for r, v in sorted(asked.items())]
    c2 = Chart("answer-shares", labels.get("chart_answer_shares", "answers"),
               ("rule_id", "asked", "confirmed", "denied", "no_answer", "confirm_share", "deny_share",
                "no_answer_share"), shares,
               Plot("stacked", x="rule_id", y=("confirm_share", "deny_share", "no_answer_share")), labels)

    prec = [(r.rule_id, r.alerts, r.labelled, r.true_positive, r.false_positive,
             round(r.precision, 3) if r.precision is not None else None) for r in rule_precision(collect(s))]
    c3 = Chart("precision", labels.get("chart_precision", "precision"),
               ("rule_id", "alerts", "labelled", "tp", "fp", "precision"), prec,
               Plot("bar", x="rule_id", y=("precision",)), labels)

    modes: dict[str, dict[str, int]] = defaultdict(lambda: {"live": 0, "shadow": 0, "suppressed": 0})
    for rule, mode, status, n in s.execute(select(AlertRow.rule_id, AlertRow.mode, AlertRow.status, func.count())
                                           .group_by(AlertRow.rule_id, AlertRow.mode, AlertRow.status)):
        key = "suppressed" if status == "suppressed" else "shadow" if mode == "shadow" or status == "shadow" else "live"
        modes[str(rule)][key] += n
    c4 = Chart("shadow-live", labels.get("chart_shadow_live", "shadow vs live"),
               ("rule_id", "live", "shadow", "suppressed"),
               [(r, v["live"], v["shadow"], v["suppressed"]) for r, v in sorted(modes.items())],
               Plot("bar", x="rule_id", y=("live", "shadow", "suppressed")), labels)
    return [c1, c2, c3, c4]


def delivery_charts(s: Session, *, days: int = 30, labels: dict[str, str] | None = None) -> list[Chart]:
    labels = labels or {}
    now = datetime.now(UTC)
    last = s.scalar(select(func.max(OutboxRow.created_at)))
    since = (_aware(last) if last else now) - timedelta(days=days)
    provider: dict[str, str] = {}
    for oid, transport in s.execute(select(Delivery.outbox_id, Delivery.transport)
                                    .join(OutboxRow, OutboxRow.id == Delivery.outbox_id)
                                    .where(OutboxRow.created_at >= since).order_by(Delivery.at, Delivery.id)):
        provider[str(oid)] = str(transport)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    q = select(OutboxRow.id, OutboxRow.channel, OutboxRow.status, OutboxRow.created_at, OutboxRow.sent_at,
               OutboxRow.delivered_at).where(OutboxRow.created_at >= since)
    for oid, channel, status, created, sent_at, delivered_at in s.execute(q):
        g = groups.setdefault((str(channel), provider.get(str(oid), "-")),
                              {"messages": 0, "sent": 0, "delivered": 0, "failed": 0, "lat": []})
        g["messages"] += 1
        g["sent"] += status in SENT
        g["delivered"] += status == "delivered"
        g["failed"] += status in FAILED
        end = delivered_at or sent_at
        if end is not None and created is not None:
            g["lat"].append((_aware(end) - _aware(created)).total_seconds())
    rows = []
    for (ch, prov), g in sorted(groups.items()):
        lat = sorted(g["lat"])
        rows.append((f"{ch}/{prov}", ch, prov, g["messages"], g["sent"], g["delivered"], g["failed"],
                     round(median(lat), 2) if lat else None,
                     round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2) if lat else None))
    cols = ("channel_provider", "channel", "provider", "messages", "sent", "delivered", "failed",
            "median_latency_s", "p95_latency_s")
    c1 = Chart("delivery", labels.get("chart_delivery", "delivery"), cols, rows,
               Plot("bar", x="channel_provider", y=("sent", "delivered", "failed")), labels)
    c2 = Chart("latency", labels.get("chart_latency", "latency"), cols, rows,
               Plot("bar", x="channel_provider", y=("median_latency_s", "p95_latency_s"), y_title="s"), labels)
    return [c1, c2]


def dead_letters(s: Session, limit: int = 200) -> list[OutboxRow]:
    return list(s.scalars(select(OutboxRow).where(OutboxRow.status.in_(DEAD_LETTERS))
                          .order_by(OutboxRow.created_at.desc(), OutboxRow.id).limit(limit)))


def survey_charts(s: Session, labels: dict[str, str] | None = None) -> list[Chart]:
    labels = labels or {}
    out = []
    for by in GROUPS:
        data = results(s, by)
        cols = (by, "asked", "answered", "response_rate", "mean_score", "satisfied", "unhappy")
        rows = [tuple(r[c] for c in cols) for r in data]
        out.append(Chart(f"surveys-{by}", labels.get(f"chart_by_{by}", by), cols, rows,
                         Plot("bar", x=by, y=("mean_score",), y_title="1-5"), labels))
    return out


def survey_comments(s: Session, limit: int = 50) -> list[Survey]:
    return list(s.scalars(select(Survey).where(Survey.comment.is_not(None))
                          .order_by(Survey.answered_at.desc()).limit(limit)))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
