"""``vigil eval``: measure the rule pack on labelled data (research/fraud-anchors.md §c).

It generates accounts with legitimate noise and takeovers by three attacker models
(:mod:`vigil_lab.evalgen`), runs the rules through the same backtest the ``backtest`` command uses
(the daemon's scan cycle against a throw-away database), and prints per-attacker recall, recall
on the takeover withdrawals and the false-alarm rate per 100 legitimate logins and withdrawals.
``--out DIR`` keeps the data and the labels, so ``vigil backtest --data DIR --labels
DIR/labels.csv`` reproduces the alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vigil.errors import ConfigError


@click.command("eval")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(),
    default=None,
    help="Rule file or directory (default: the packaged default pack).",
)
@click.option("--seed", type=int, default=11, show_default=True)
@click.option("--accounts", type=click.IntRange(50, 200_000), default=600, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(20, 730),
    default=60,
    show_default=True,
    help="Days evaluated (attacks happen and false alarms are counted here).",
)
@click.option(
    "--warmup-days",
    type=click.IntRange(0, 730),
    default=30,
    show_default=True,
    help="Days of history before them, as a deployment imports history first.",
)
@click.option(
    "--attacks",
    type=click.IntRange(1, 10_000),
    default=60,
    show_default=True,
    help="Takeovers per attacker model.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write the generated data and labels.csv here.",
)
@click.option(
    "--markdown",
    "md_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the result table (Markdown) to this file.",
)
@click.option("--include-shadow", is_flag=True, help="Count shadow-mode alerts as alerts too.")
@click.option(
    "--robustness",
    is_flag=True,
    help="Then rerun with each nonzero knob doubled in turn and print the prompt rates (one run per knob).",
)
@click.option("--stress", is_flag=True, help="Turn the stress knobs on at their documented defaults (docs/quality.md).")
@click.option(
    "--knob",
    "knobs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set one noise or stress knob of the generator (repeatable), e.g. --knob patient_share=0.5.",
)
def eval_command(
    rules_path: str | None,
    seed: int,
    accounts: int,
    days: int,
    attacks: int,
    warmup_days: int,
    out_dir: str | None,
    md_path: str | None,
    include_shadow: bool,
    stress: bool,
    knobs: tuple[str, ...],
    robustness: bool,
) -> None:
    """Generate labelled data, run the rule pack over it, and print recall and false-alarm rates."""
    from vigil.backtest import run_backtest
    from vigil.bootstrap import load_rule_set
    from vigil_lab.evalgen import EvalSpec, generate
    from vigil_lab.evalscore import (
        MAX_LOGIN_PROMPTS,
        MAX_WITHDRAWAL_PROMPTS,
        TARGETS,
        format_report,
        prompt_rule_ids,
        score,
    )

    if accounts < attacks * 3 * 2:
        raise ConfigError(
            f"--accounts {accounts} is too small for {attacks} attacks per model: use at least {attacks * 6} accounts"
        )
    from vigil_lab.evalgen import KNOBS, STRESS

    values: dict[str, Any] = dict(STRESS) if stress else {}
    for k in knobs:
        name, _, raw = k.partition("=")
        if name not in KNOBS:
            from difflib import get_close_matches

            close = get_close_matches(name, KNOBS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"--knob {k!r}: unknown knob {name!r}{hint}; known: {', '.join(KNOBS)}")
        try:
            v = float(raw)
        except ValueError:
            raise ConfigError(f"--knob {k!r}: the value must be a number between 0 and 1") from None
        if not 0 <= v <= 1:
            raise ConfigError(f"--knob {k!r}: the value must be between 0 and 1")
        values[name] = v
    import dataclasses

    spec = dataclasses.replace(
        EvalSpec(seed=seed, accounts=accounts, days=days, warmup_days=warmup_days, attacks_per_model=attacks),
        **values,
    )
    data = generate(spec)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in data.frames.items():
            df.to_csv(out / f"{name}.csv", index=False)
        data.labels.to_csv(out / "labels.csv", index=False)
        data.attacks.to_csv(out / "attacks.csv", index=False)
    rules = load_rule_set(rules_path)
    # a measurement of the rules must not depend on how busy the machine is: the engine switches a
    # condition off for the rest of a batch when one evaluation takes over 50 ms of wall-clock time
    # (rules/limits.py), and a backtest of this size is one batch -- so no wall-clock budget here
    import rules.engine as engine

    engine.EVAL_BUDGET_SECONDS = float("inf")
    res = run_backtest(data.frames, rules=rules)
    rep = score(data, res.alerts, live_only=not include_shadow, prompt_rules=prompt_rule_ids(rules))
    live = sum(1 for a in res.alerts if a.get("mode", "live") == "live")
    head = (
        f"vigil eval: seed {seed}, {accounts} accounts, {spec.warmup_days} days of history + {days} days "
        f"evaluated, {len(data.frames['logins'])} logins, "
        f"{len(data.frames['transactions'])} transactions, {attacks} takeovers per attacker model; "
        f"{live} live alerts, {len(res.alerts) - live} shadow" + (" (counted)" if include_shadow else " (not counted)")
    )
    head += "\nknobs: " + ", ".join(f"{k}={getattr(spec, k):g}" for k in KNOBS)
    table = format_report(rep)
    click.echo(head)
    click.echo(table)
    if (rep.login_prompt_rate or 0.0) > MAX_LOGIN_PROMPTS:
        click.echo(f"below target: more than {MAX_LOGIN_PROMPTS:g} prompts per 100 legitimate logins")
    if (rep.withdrawal_prompt_rate or 0.0) > MAX_WITHDRAWAL_PROMPTS:
        click.echo(f"below target: more than {MAX_WITHDRAWAL_PROMPTS:g} prompts per 100 legitimate withdrawals")
    for r in rep.rows:
        if r["login_recall"] < TARGETS[r["attacker"]]:
            click.echo(f"below target: {r['attacker']} recall {r['login_recall']:.1%}")
    if robustness:
        rows = [robustness_row("as above", rep)]
        for k in KNOBS:
            v = float(getattr(spec, k))
            if v <= 0:
                continue
            doubled: dict[str, Any] = {k: min(1.0, 2 * v)}
            other = dataclasses.replace(spec, **doubled)
            d2 = generate(other)
            r2 = score(
                d2,
                run_backtest(d2.frames, rules=rules).alerts,
                live_only=not include_shadow,
                prompt_rules=prompt_rule_ids(rules),
            )
            rows.append(robustness_row(f"{k} {v:g} -> {min(1.0, 2 * v):g}", r2))
        table += "\n\nRobustness (each nonzero knob doubled in turn):\n\n" + "\n".join(
            [
                "| run | login prompts / 100 | withdrawal prompts / 100 | naive | vpn | targeted |",
                "|---|---:|---:|---:|---:|---:|",
                *rows,
            ]
        )
        click.echo(table[table.index("Robustness") :])
    if md_path:
        Path(md_path).parent.mkdir(parents=True, exist_ok=True)
        Path(md_path).write_text(head + "\n\n" + table + "\n", encoding="utf-8")
        click.echo(f"wrote {md_path}")


def robustness_row(label: str, rep: Any) -> str:
    recall = " | ".join(f"{r['login_recall']:.1%}" for r in rep.rows)
    return f"| {label} | {rep.login_prompt_rate or 0.0:.2f} | {rep.withdrawal_prompt_rate or 0.0:.2f} | {recall} |"
