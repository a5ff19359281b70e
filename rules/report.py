"""Backtest reports: per-rule volume and accuracy, and what a rule change adds or drops.

Pure functions over the alert dicts a backtest produces (``alert_id, rule_id, detector,
account_id, severity, ts, event_ids, mode``).  The question staff ask before a change goes live
is "how many people will this message, how often, and does it still catch the incidents we know
about" -- hence alerts per account per day (the notification budget) next to precision and
recall against labelled event ids.

Alert ids are deterministic (rule id + finding id, and a finding id comes from its events), so
the same rule firing on the same events in two runs yields the same id: that is what
:func:`compare` matches on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

TOTAL = "(all rules)"


@dataclass(frozen=True)
class RuleStats:
    rule_id: str
    mode: str
    alerts: int
    accounts: int
    per_account_day: float  # mean alerts per alerted account per day of data
    max_account_day: int  # most alerts one account received on one (UTC) day
    true_positives: int | None = None  # alerts that involve a labelled event
    precision: float | None = None
    recall: float | None = None  # share of labelled events this rule alerted on
    labelled_events: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_rule_report(
    alerts: Sequence[Mapping[str, Any]], labels: set[str] | None, days: float
) -> list[RuleStats]:
    """One row per rule (sorted by id) and a last row for all rules together.

    ``days`` is the span of the replayed data; ``labels`` the event ids known to be incidents.
    """
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days}")
    by_rule: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for a in alerts:
        by_rule[str(a["rule_id"])].append(a)
    rows = [_stats(rid, items, labels, days) for rid, items in sorted(by_rule.items())]
    rows.append(_stats(TOTAL, list(alerts), labels, days))
    return rows


def _stats(
    rule_id: str, items: Sequence[Mapping[str, Any]], labels: set[str] | None, days: float
) -> RuleStats:
    accounts = {str(a["account_id"]) for a in items}
    per_day = Counter((str(a["account_id"]), _day(a["ts"])) for a in items)
    modes = sorted({str(a.get("mode", "live")) for a in items}) or ["live"]
    base = dict(
        rule_id=rule_id,
        mode="+".join(modes),
        alerts=len(items),
        accounts=len(accounts),
        per_account_day=round(len(items) / len(accounts) / days, 4) if accounts else 0.0,
        max_account_day=max(per_day.values(), default=0),
    )
    if labels is None:
        return RuleStats(**base)  # type: ignore[arg-type]
    hits = [a for a in items if labels.intersection(map(str, a.get("event_ids") or ()))]
    caught = (
        set().union(*(labels.intersection(map(str, a.get("event_ids") or ())) for a in items))
        if items
        else set()
    )
    return RuleStats(
        **base,  # type: ignore[arg-type]
        true_positives=len(hits),
        precision=round(len(hits) / len(items), 4) if items else None,
        recall=round(len(caught) / len(labels), 4) if labels else None,
        labelled_events=len(labels),
    )


def _day(ts: Any) -> str:
    if isinstance(ts, datetime):
        return ts.date().isoformat()
    return str(ts)[:10]


@dataclass(frozen=True)
class RuleDiff:
    rule_id: str
    old: int
    new: int
    added: list[Mapping[str, Any]] = field(default_factory=list)
    dropped: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.new - len(self.added)

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "old": self.old,
            "new": self.new,
            "unchanged": self.unchanged,
            "added": [_brief(a) for a in self.added[:limit]],
            "dropped": [_brief(a) for a in self.dropped[:limit]],
        }


def _brief(a: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in a.items()
        if k in ("alert_id", "account_id", "ts", "event_ids", "severity", "detector")
    }


def compare(
    old_alerts: Iterable[Mapping[str, Any]], new_alerts: Iterable[Mapping[str, Any]]
) -> list[RuleDiff]:
    """Per rule (sorted by id): the alerts the new rules add and the ones they drop."""
    old = _index(old_alerts)
    new = _index(new_alerts)
    out = []
    for rid in sorted(set(old) | set(new)):
        o, n = old.get(rid, {}), new.get(rid, {})
        added = [n[k] for k in sorted(n.keys() - o.keys(), key=lambda k: _order(n[k]))]
        dropped = [o[k] for k in sorted(o.keys() - n.keys(), key=lambda k: _order(o[k]))]
        out.append(RuleDiff(rid, len(o), len(n), added, dropped))
    return out


def _index(alerts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    out: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for a in alerts:
        key = str(a.get("alert_id") or (a["rule_id"], tuple(a.get("event_ids") or ())))
        out[str(a["rule_id"])][key] = a
    return out


def _order(a: Mapping[str, Any]) -> tuple[str, str]:
    return (str(a.get("ts")), str(a.get("alert_id")))


def format_report(rows: Sequence[RuleStats]) -> str:
    """A fixed-width table for the terminal."""
    labelled = any(r.precision is not None or r.recall is not None for r in rows)
    head = ["rule", "mode", "alerts", "accounts", "per acct/day", "max acct/day"]
    if labelled:
        head += ["precision", "recall"]
    table = [head]
    for r in rows:
        line = [
            r.rule_id,
            r.mode,
            str(r.alerts),
            str(r.accounts),
            f"{r.per_account_day:.3f}",
            str(r.max_account_day),
        ]
        if labelled:
            line += [_pct(r.precision), _pct(r.recall)]
        table.append(line)
    return _columns(table)


def format_compare(diffs: Sequence[RuleDiff], examples: int = 3) -> str:
    table = [["rule", "old", "new", "added", "dropped"]]
    for d in diffs:
        table.append([d.rule_id, str(d.old), str(d.new), f"+{len(d.added)}", f"-{len(d.dropped)}"])
    out = [_columns(table)]
    for d in diffs:
        for sign, items in (("+", d.added), ("-", d.dropped)):
            for a in items[:examples]:
                out.append(
                    f"  {sign} {d.rule_id}: account {a.get('account_id')} at {a.get('ts')} "
                    f"events {', '.join(map(str, a.get('event_ids') or ()))}"
                )
            if len(items) > examples:
                out.append(f"  {sign} {d.rule_id}: ... {len(items) - examples} more")
    return "\n".join(out)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _columns(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    )
