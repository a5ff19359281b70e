"""Precision-recall curves of the two risk scores per attacker model (``vigil eval --plots DIR``).

The curve sweeps the score threshold of the ``login_risk`` and ``withdrawal_risk`` findings: one
backtest with a rule per threshold (``finding.evidence.log10_score >= X``) and the pack's own
detector parameters, the report floor lowered to the smallest threshold.  At each threshold:

* recall of an attacker model = the share of its takeovers with an alerted login (login_risk) or
  an alerted takeover withdrawal (withdrawal_risk);
* precision = alerted events of that model's takeovers / all alerted events in the evaluation
  window (theirs plus the legitimate ones) -- with 60 takeovers per model among thousands of
  legitimate logins it reads "how many alerts are real at this base rate", not a property of the
  score alone.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.errors import ConfigError
from vigil_lab.evalgen import ATTACKERS, EvalSet

THRESHOLDS: dict[str, tuple[float, ...]] = {
    "login_risk": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0),
    "withdrawal_risk": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
}


@dataclass
class Curve:
    detector: str
    attacker: str
    label: str  # e.g. "seed 11 (tuning)"
    thresholds: list[float] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    current: float | None = None  # the pack's threshold (its lowest live rule), if any


def grids(rules: Any) -> dict[str, tuple[float, ...]]:
    """The thresholds swept per risk detector the pack has: the grid plus the pack's own threshold."""
    out = {}
    for name, grid in THRESHOLDS.items():
        if rules.detectors.get(name) is None or not rules.for_detector(name):  # no rule of the pack reads it
            continue
        own = pack_threshold(rules, name)
        out[name] = tuple(sorted({*grid, *([own] if own is not None and own >= min(grid) else [])}))
    return out


def sweep_rule_set(rules: Any) -> Any:
    """A rule set with one rule per threshold for each risk detector the pack has (its parameters)."""
    import json

    from vigil.bootstrap import load_rule_set

    dets: dict[str, Any] = {}
    rule_list: list[dict[str, Any]] = []
    for name, grid in grids(rules).items():
        det = rules.detectors[name]  # the pack's parameters
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(det.p).items()}
        params["min_log10_score"] = min(grid)
        dets[name] = params
        for x in grid:
            rule_list.append(
                {
                    "id": f"pr-{name.replace('_', '-')}-{x:g}",
                    "description": f"{name} score >= 10^{x:g}",
                    "owner": "lab",
                    "detector": name,
                    "when": f"finding.evidence.log10_score >= {x}",
                    "severity": "low",
                }
            )
    if not dets:
        raise ConfigError("--plots: the rule set has neither login_risk nor withdrawal_risk: no score to sweep")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.yaml"
        # JSON is YAML
        path.write_text(json.dumps({"version": 1, "detectors": dets, "rules": rule_list}), encoding="utf-8")
        return load_rule_set(str(path))


def pack_threshold(rules: Any, detector: str) -> float | None:
    """The score from which the pack alerts live (the detector's report floor), if it has a live rule."""
    det = rules.detectors.get(detector)
    live = [r for r in getattr(rules, "rules", []) if detector in r.rule.detectors and r.rule.mode == "live"]
    return float(det.p["min_log10_score"]) if det is not None and live else None


def curves(data: EvalSet, alerts: list[dict[str, Any]], label: str, rules: Any) -> list[Curve]:
    """One curve per risk detector and attacker model from the sweep rule set's alerts."""
    lab = data.labels
    start = pd.Timestamp(data.spec.window_start)
    ids = {
        "login_risk": set(data.frames["logins"].loc[data.frames["logins"]["ts"] >= start, "event_id"]),
        "withdrawal_risk": set(
            data.frames["transactions"].loc[data.frames["transactions"]["ts"] >= start, "event_id"]
        ),
    }
    roles = {"login_risk": ("login", "login_failed"), "withdrawal_risk": ("withdrawal",)}
    by_rule: dict[str, set[str]] = {}
    for a in alerts:
        ev = a["event_ids"]
        by_rule.setdefault(a["rule_id"], set()).update(ev if isinstance(ev, list) else [ev])
    out = []
    for det, grid in grids(rules).items():
        ev_role = lab[lab["role"].isin(roles[det])]
        for model in ATTACKERS:
            mine = ev_role[ev_role["attacker"] == model]
            n_attacks = max(int((data.attacks["attacker"] == model).sum()), 1)
            attack_events = set(lab["event_id"])
            c = Curve(det, model, label, current=pack_threshold(rules, det))
            for x in grid:
                hit = by_rule.get(f"pr-{det.replace('_', '-')}-{x:g}", set()) & ids[det]
                tp_events = hit & set(mine["event_id"])
                fp_events = hit - attack_events
                caught = mine[mine["event_id"].isin(hit)]["attack_id"].nunique()
                c.thresholds.append(x)
                c.recall.append(caught / n_attacks)
                denom = len(tp_events) + len(fp_events)
                c.precision.append(len(tp_events) / denom if denom else float("nan"))  # nothing alerted
            out.append(c)
    return out


def write_plots(all_curves: list[Curve], out_dir: str | Path) -> list[Path]:
    """One PNG per attacker model (``pr-<model>.png``): a curve per risk detector and run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plots needs matplotlib: pip install 'vigil-alerts[lab]'") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in ATTACKERS:
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        for c in (c for c in all_curves if c.attacker == model):
            style = "-" if c.detector == "login_risk" else "--"
            (line,) = ax.plot(c.recall, c.precision, style, marker="o", ms=3, label=f"{c.detector}, {c.label}")
            for x, r, p in zip(c.thresholds, c.recall, c.precision, strict=True):
                if x == c.current:
                    ax.plot([r], [p], marker="*", ms=12, color=line.get_color())
                if x in (0.0, 2.0, 4.0) or x == c.current:
                    ax.annotate(f"{x:g}", (r, p), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"recall ({model} takeovers)")
        ax.set_ylabel("precision (alerted events that are takeovers)")
        ax.set_title(f"{model} attacker: log10 score threshold swept (labels), * = the pack's")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        path = out / f"pr-{model}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def curve_table(all_curves: list[Curve]) -> str:
    """The curves as a Markdown table (threshold: precision / recall), for a reader without the PNGs."""
    lines = []
    for det in THRESHOLDS:
        cs = [c for c in all_curves if c.detector == det]
        if not cs:
            continue
        grid = max((c.thresholds for c in cs), key=len)
        lines += [
            "",
            f"{det}: precision / recall at log10 score >= X",
            "",
            "| run | attacker | " + " | ".join(f"{x:g}" for x in grid) + " |",
            "|---|---|" + "---:|" * len(grid),
        ]
        for c in cs:
            cells = " | ".join(
                ("-" if p != p else f"{p:.2f}") + f" / {r:.2f}" for p, r in zip(c.precision, c.recall, strict=True)
            )
            lines.append(f"| {c.label} | {c.attacker} | {cells} |")
    return "\n".join(lines)
