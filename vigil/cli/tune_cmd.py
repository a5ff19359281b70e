"""``vigil tune RULE``: sweep a rule's main parameter on labelled data (docs/rules.md, "Tuning").

For each value of the parameter the rule's detector is rebuilt with it and the rule alone is
backtested (the same backtest as ``vigil backtest``: detectors, throttles, alert stage); the table
shows the alerts, alerts per day, precision and recall against the labelled events, and marks the
value that keeps within the budget (alerts per day) with the highest recall.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from vigil.errors import ConfigError

# detector -> the parameter that moves its alert rate most directly
MAIN_PARAMS: Mapping[str, str] = {
    "new_location": "window_days",
    "impossible_travel": "max_speed_kmh",
    "new_device": "window_days",
    "new_subnet": "window_days",
    "new_asn": "window_days",
    "login_risk": "min_log10_score",
    "failed_logins": "max_failures",
    "credential_stuffing": "min_accounts",
    "large_withdrawal": "absolute_usd",
    "high_leverage": "max_leverage",
    "new_address": "min_usd",
    "withdrawal_after_change": "window_hours",
    "withdrawal_risk": "min_log10_score",
    "draining": "max_sum_usd",
    "trading_spike": "multiple",
    "isolation": "score_threshold",
}
FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
STEPS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)  # for log-scale parameters (scores), added instead


@dataclasses.dataclass
class Point:
    value: Any
    alerts: int = 0
    per_day: float = 0.0
    precision: float | None = None
    recall: float | None = None
    error: str | None = None


def sweep_values(current: Any, kind: type, name: str, given: str | None) -> list[Any]:
    """The values to try: ``given`` (comma-separated), else a grid around the current value."""
    if given:
        try:
            vals = [kind(float(v)) if kind is int else kind(v) for v in given.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--values {given!r}: expected numbers separated by commas") from None
        return list(dict.fromkeys(vals))
    additive = "log10" in name or current == 0  # a score in log10 (or zero) moves by steps, not factors
    grid = [current + s for s in STEPS] if additive else [current * f for f in FACTORS]
    out = [kind(round(v)) if kind is int else round(float(v), 6) for v in grid]
    return list(dict.fromkeys(v for v in out if not (kind is int and v < 1)))


def variant(rules: Any, rule_id: str, detector: str, param: str, value: Any) -> Any:
    """The rule set reduced to ``rule_id`` with its detector rebuilt at ``param = value``."""
    base = rules.detectors[detector]
    inst = type(base)(**{**base.get_params(), param: value})  # ParameterError when refused
    if hasattr(base, "attach") and getattr(base, "model_", None) is not None:
        inst.attach(base.model_)  # the learned detector keeps its model
    rule = rules.get(rule_id)
    return dataclasses.replace(
        rules,
        rules=[rule],
        detectors={**rules.detectors, detector: inst},
        configs={k: v for k, v in rules.configs.items() if k != detector},  # segment overrides: not swept
    )


def score_points(
    points: list[Point], alerts: Sequence[Mapping[str, Any]], point: Point, labelled: set[str], days: float
) -> None:
    point.alerts = len(alerts)
    point.per_day = len(alerts) / days
    if labelled:
        hits = [a for a in alerts if labelled.intersection(map(str, a["event_ids"]))]
        caught = set().union(*(labelled.intersection(map(str, a["event_ids"])) for a in alerts)) if alerts else set()
        point.precision = len(hits) / len(alerts) if alerts else None
        point.recall = len(caught) / len(labelled)
    points.append(point)


def best(points: Sequence[Point], budget: float) -> Point | None:
    """The value within the budget with the highest recall (then the fewest alerts)."""
    ok = [p for p in points if p.error is None and p.per_day <= budget]
    if not ok:
        return None
    return max(ok, key=lambda p: (p.recall or 0.0, -p.alerts))


def table_events(data: str, table: str) -> set[str] | None:
    """The event ids of one table of the data directory (None when it cannot be read)."""
    import pandas as pd

    for path in (Path(data) / f"{table}.parquet", Path(data) / f"{table}.csv"):
        if path.is_file():
            try:
                if path.suffix == ".parquet":
                    col = pd.read_parquet(path, columns=["event_id"])["event_id"]
                else:
                    col = pd.read_csv(path, usecols=["event_id"], dtype=str)["event_id"]
            except (ValueError, KeyError, OSError):
                return None
            return {str(v) for v in col.dropna()}
    return None


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


@click.command("tune")
@click.argument("rule_id", metavar="RULE")
@click.option("--data", "data", required=True, type=click.Path(file_okay=False), help="Labelled history directory.")
@click.option("--labels", required=True, type=click.Path(dir_okay=False),
              help="Attack event ids (one per line, or a CSV with an event_id column).")
@click.option("--budget", required=True, type=click.FloatRange(0, None), help="Alerts per day the team accepts.")
@click.option("--rules", "rules_path", type=click.Path(), default=None, help="Rule file or directory.")
@click.option("--param", "param", default=None, help="Detector parameter to sweep (default: the detector's main one).")
@click.option("--values", "values", default=None, help="Values to try, comma-separated (default: a grid around now).")
@click.option("--warmup", "warmup_days", type=click.FloatRange(0, 3650), default=0, show_default=True,
              help="Days from the data's start that only teach the profiles.")
@click.pass_context
def tune_cmd(ctx: click.Context, rule_id: str, data: str, labels: str, budget: float, rules_path: str | None,
             param: str | None, values: str | None, warmup_days: float) -> None:
    """Sweep RULE's main parameter on labelled data: alert rate and recall at each value, and the
    value that meets the budget (alerts per day) marked."""
    from detectors.base import ParameterError
    from vigil.backtest import run_backtest
    from vigil.bootstrap import load_rule_set
    from vigil.cli.core import _with_models
    from vigil.reporting import data_days, read_labels

    if not Path(data).is_dir():
        raise ConfigError(f"{data}: data directory not found")
    rules = _with_models(ctx, load_rule_set(rules_path))
    compiled = rules.get(rule_id)
    if compiled is None:
        from confkit import closest

        close = closest(rule_id, [r.id for r in rules.rules])
        hint = f"; did you mean {close!r}?" if close else ""
        raise ConfigError(f"no rule {rule_id!r} in the rule set{hint}")
    detector = compiled.rule.detectors[0]
    base = rules.detectors[detector]
    name = param or MAIN_PARAMS.get(detector)
    if name is None or name not in base.params:
        known = ", ".join(sorted(base.params))
        raise ConfigError(f"--param {name!r}: not a parameter of detector {detector!r} (known: {known})")
    spec = base.params[name]
    if spec.kind not in (int, float):
        raise ConfigError(f"--param {name!r} of {detector!r} is not a number; pick a numeric parameter")
    current = base.get_params()[name]
    grid = sweep_values(current, spec.kind, name, values)
    lab = read_labels(labels)
    events = table_events(data, base.table)
    labelled = lab & events if events is not None else lab
    days = max(1.0, data_days(data) - warmup_days)
    points: list[Point] = []
    for v in grid:
        try:
            rs = variant(rules, rule_id, detector, name, v)
        except ParameterError as e:
            points.append(Point(v, error=str(e)))
            continue
        res = run_backtest(data, rules=rs, warmup_days=warmup_days)
        score_points(points, [a for a in res.alerts if a["rule_id"] == rule_id], Point(v), labelled, days)
    click.echo(f"sweep of rule {rule_id}: detector {detector}, parameter {name} (now {current:g}), "
               f"{days:.1f} day(s) of data, {len(labelled)} labelled {base.table} event(s), "
               f"budget {budget:g} alert(s) per day")
    pick = best(points, budget)
    head = f"{'value':>12}  {'alerts':>7}  {'per day':>8}  {'precision':>9}  {'recall':>7}"
    click.echo(head)
    for p in points:
        if p.error:
            click.echo(f"{p.value:>12g}  refused: {p.error}")
            continue
        mark = "  <- within budget, highest recall" if p is pick else ""
        now = " (now)" if p.value == current else ""
        click.echo(f"{p.value:>12g}  {p.alerts:>7}  {p.per_day:>8.2f}  {_pct(p.precision):>9}  "
                   f"{_pct(p.recall):>7}{mark}{now}")
    if pick is None:
        click.echo(f"no value keeps within {budget:g} alert(s) per day; try --values beyond the grid")
    else:
        click.echo(f"set detectors: {detector}: {name}: {pick.value:g}  (recall {_pct(pick.recall)}, "
                   f"{pick.per_day:.2f} alert(s) per day)")


COMMANDS = [tune_cmd]
