"""Scoring a rule pack on the labelled data of :mod:`vigil_lab.evalgen`: recall per attacker model,
recall on takeover withdrawals, and false alarms per 100 legitimate logins and withdrawals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from vigil_lab.evalgen import ATTACKERS, EvalSet


@dataclass
class EvalReport:
    rows: list[dict[str, Any]]
    legit_logins: int
    legit_withdrawals: int
    login_alerts: int
    withdrawal_alerts: int
    per_rule: dict[str, int]
    spec: dict[str, Any]
    login_prompts: int | None = None  # false alarms that ask "was this you?" (rules with confirm: true)
    withdrawal_prompts: int | None = None
    margin_episodes: int = 0  # positions whose margin ratio reached 0.8 in the window
    margin_warned: int = 0  # ... of which a live margin-tier alert came during the episode

    @property
    def margin_warned_share(self) -> float | None:
        return None if not self.margin_episodes else self.margin_warned / self.margin_episodes

    @property
    def login_prompt_rate(self) -> float | None:
        return None if self.login_prompts is None else 100.0 * self.login_prompts / max(self.legit_logins, 1)

    @property
    def withdrawal_prompt_rate(self) -> float | None:
        if self.withdrawal_prompts is None:
            return None
        return 100.0 * self.withdrawal_prompts / max(self.legit_withdrawals, 1)

    @property
    def login_alert_rate(self) -> float:
        return 100.0 * self.login_alerts / max(self.legit_logins, 1)

    @property
    def withdrawal_alert_rate(self) -> float:
        return 100.0 * self.withdrawal_alerts / max(self.legit_withdrawals, 1)


def score(
    data: EvalSet,
    alerts: Iterable[Mapping[str, Any]],
    *,
    live_only: bool = True,
    prompt_rules: set[str] | None = None,
) -> EvalReport:
    """Recall per attacker model and alert rates on legitimate activity.

    An attack is *caught* when an alert's ``event_ids`` include one of its login events; a
    takeover withdrawal is caught directly when an alert names it, and *covered* when a login
    alert of the same attack came first (the user could answer "not me" and freeze the account).
    An alert is a false alarm when none of its events is an attack event.  ``prompt_rules`` (the
    rules that ask "was this you?", ``notify.confirm``) splits the false alarms into prompts and
    notices.
    """
    al = [a for a in alerts if not live_only or a.get("mode", "live") == "live"]
    attack_events = set(data.labels["event_id"])
    lab = data.labels
    login_ev = lab[lab["role"].isin(["login", "login_failed"])].groupby("attack_id")["event_id"].apply(set)
    alerted: dict[str, str] = {}
    for a in al:
        for e in a["event_ids"]:
            alerted[e] = min(alerted.get(e, a["ts"]), a["ts"])
    tx_ts = data.frames["transactions"].set_index("event_id")["ts"]
    rows = []
    for model in ATTACKERS:
        att = data.attacks[data.attacks["attacker"] == model]
        caught = [aid for aid in att["attack_id"] if any(e in alerted for e in login_ev.get(aid, set()))]
        wd_direct = [w for w in att["withdrawal_event_id"] if w in alerted]
        covered = 0
        for r in att.itertuples(index=False):
            first = min((alerted[e] for e in login_ev.get(r.attack_id, set()) if e in alerted), default=None)
            wd_ts = tx_ts[r.withdrawal_event_id]
            if r.withdrawal_event_id in alerted or (first is not None and pd.Timestamp(first) <= wd_ts):
                covered += 1
        n = max(len(att), 1)
        rows.append(
            {
                "attacker": model,
                "attacks": len(att),
                "login_recall": len(caught) / n,
                "withdrawal_recall": len(wd_direct) / n,
                "withdrawal_covered": covered / n,
            }
        )
    # false alarms are counted in the evaluation window, after the warm-up history
    start = pd.Timestamp(data.spec.window_start)
    logins = data.frames["logins"]
    tx = data.frames["transactions"]
    in_window = logins["ts"] >= start
    legit_logins = int((in_window & ~logins["event_id"].isin(attack_events) & logins["success"].astype(bool)).sum())
    wd = (tx["kind"] == "withdrawal") & (tx["ts"] >= start)
    legit_wd = int((wd & ~tx["event_id"].isin(attack_events)).sum())
    login_ids = set(logins.loc[in_window, "event_id"])
    tx_ids = set(tx.loc[tx["ts"] >= start, "event_id"])
    false = [a for a in al if not (set(a["event_ids"]) & attack_events)]
    false_login = [a for a in false if set(a["event_ids"]) & login_ids]
    false_wd = [a for a in false if set(a["event_ids"]) & tx_ids]
    per_rule = dict(Counter(a["rule_id"] for a in false_login + false_wd))
    login_alerts, wd_alerts = len(false_login), len(false_wd)
    rep = EvalReport(rows, legit_logins, legit_wd, login_alerts, wd_alerts, per_rule, asdict(data.spec))
    rep.margin_episodes, rep.margin_warned = _margin(data, al)
    if prompt_rules is not None:
        rep.login_prompts = sum(1 for a in false_login if a["rule_id"] in prompt_rules)
        rep.withdrawal_prompts = sum(1 for a in false_wd if a["rule_id"] in prompt_rules)
    return rep


def _margin(data: EvalSet, alerts: list[Mapping[str, Any]]) -> tuple[int, int]:
    """Margin episodes and how many of them a margin-tier alert warned while they lasted."""
    ep = data.margin_episodes
    if ep is None or not len(ep):
        return 0, 0
    warn: dict[str, list[pd.Timestamp]] = {}
    for a in alerts:
        if str(a.get("kind", "")).startswith("margin_tier"):
            warn.setdefault(str(a["account_id"]), []).append(pd.Timestamp(a["ts"]))
    warned = 0
    for acct, start, end in zip(ep["account_id"], ep["start"], ep["end"], strict=True):
        if any(pd.Timestamp(start) <= t <= pd.Timestamp(end) for t in warn.get(str(acct), [])):
            warned += 1
    return len(ep), warned


def prompt_rule_ids(rules: Any) -> set[str]:
    """The ids of the rules whose message asks "was this you?" (``notify.confirm``)."""
    out = set()
    for r in getattr(rules, "rules", []):
        notify = getattr(getattr(r, "rule", r), "notify", None)
        if notify is not None and getattr(notify, "confirm", False):
            out.add(r.id)
    return out


# issue 13 point 8: the default pack's targets, live alerts only (targeted: with device ids)
TARGETS = {"naive": 0.99, "vpn": 0.95, "targeted": 0.90}
MIN_MARGIN_WARNED = 0.98  # share of margin episodes warned
MAX_LOGIN_PROMPTS = 0.7  # "was this you?" per 100 legitimate logins
MAX_WITHDRAWAL_PROMPTS = 8.0  # per 100 legitimate withdrawals


def format_report(rep: EvalReport) -> str:
    """A Markdown table a person reads and ``docs/quality.md`` keeps."""
    lines = [
        "| attacker | attacks | login recall | target | takeover withdrawal alerted | covered by an earlier "
        "login alert or alerted |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rep.rows:
        lines.append(
            f"| {r['attacker']} | {r['attacks']} | {r['login_recall']:.1%} | ≥ {TARGETS[r['attacker']]:.0%} "
            f"| {r['withdrawal_recall']:.1%} | {r['withdrawal_covered']:.1%} |"
        )
    lines += [
        "",
        f"False alarms on legitimate logins: {rep.login_alerts} in {rep.legit_logins} successful logins "
        f"= **{rep.login_alert_rate:.2f} per 100**.",
        f"False alarms on legitimate withdrawals: {rep.withdrawal_alerts} in {rep.legit_withdrawals} "
        f"withdrawals = **{rep.withdrawal_alert_rate:.2f} per 100**.",
    ]
    if rep.withdrawal_prompts is not None and rep.login_prompts is not None:
        lines += [
            "",
            f"Of these, \"was this you?\" prompts: {rep.login_prompts} on logins = **{rep.login_prompt_rate:.2f} "
            f"per 100 legitimate logins**, {rep.withdrawal_prompts} on withdrawals = "
            f"**{rep.withdrawal_prompt_rate:.2f} per 100 legitimate withdrawals** (the rest are notices; "
            f"targets ≤ {MAX_LOGIN_PROMPTS:g} and ≤ {MAX_WITHDRAWAL_PROMPTS:g}).",
        ]
    if rep.margin_episodes:
        lines += [
            "",
            f"Margin episodes warned: {rep.margin_warned} of {rep.margin_episodes} positions whose margin ratio "
            f"reached 0.8 = **{rep.margin_warned_share:.1%}** (target ≥ {MIN_MARGIN_WARNED:.0%}).",
        ]
    if rep.per_rule:
        lines += [
            "",
            "False alarms by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.per_rule.items())),
        ]
    return "\n".join(lines)
