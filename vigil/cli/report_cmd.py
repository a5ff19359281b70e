"""``vigil report``: per-rule precision from ticket resolution codes and users' answers.

The feedback loop of the issue: staff resolve tickets as false_positive / valuable /
risk_confirmed, users answer "not me" / "it was me", and this report turns both into a precision
per rule (``tickets/feedback.py`` says which label wins), so a noisy rule is visible by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import click

from vigil.errors import VigilError


def _when(value: str | None, now: datetime, option: str) -> datetime | None:
    """``30d`` (before now) or an ISO date/time (UTC when no offset is given)."""
    if value is None:
        return None
    from rules.durations import parse_duration

    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise VigilError(f"{option}: {value!r} is neither a duration (30d) nor a date (2026-03-01)") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


@click.command("report")
@click.option("--since", default=None, help="Alerts from this long ago (30d) or this date on.")
@click.option("--until", default=None, help="Alerts before this date.")
@click.option("--rule", default=None, help="Only this rule.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--surveys", "surveys_only", is_flag=True,
              help="Only the satisfaction survey results (per queue, category and agent).")
@click.pass_context
def report_cmd(ctx: click.Context, since: str | None, until: str | None, rule: str | None, as_json: bool,
               surveys_only: bool) -> None:
    """Per-rule precision from ticket resolution codes and users' answers, and survey results."""
    from tickets.feedback import collect, rule_precision
    from tickets.surveys import GROUPS, results
    from vigil.cli.core import _app
    from vigil.reporting import table

    app = _app(ctx)
    try:
        now = app.clock()
        with app.sessions() as s:
            labelled = collect(s, since=_when(since, now, "--since"), until=_when(until, now, "--until"),
                               rule=rule)
            surveys = {by: results(s, by, since=_when(since, now, "--since")) for by in GROUPS}
        rows = rule_precision(labelled)
    finally:
        app.close()
    if surveys_only:
        if as_json:
            click.echo(json.dumps(surveys, indent=2))
            return
        _echo_surveys(surveys)
        return
    data: list[Mapping[str, Any]] = [r.as_row() for r in rows]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("per-rule precision (labels: ticket resolution codes, else the user's answer; "
               "valuable and risk_confirmed count as true positives):")
    click.echo(table(data))
    n = sum(r.labelled for r in rows)
    tp = sum(r.true_positive for r in rows)
    overall = f"{tp / n:.3f}" if n else "-"
    click.echo(f"all rules: {sum(r.alerts for r in rows)} alert(s), {n} labelled, precision {overall}")
    click.echo("")
    _echo_surveys(surveys)


def _echo_surveys(surveys: Mapping[str, list[dict[str, Any]]]) -> None:
    from vigil.reporting import table

    click.echo("satisfaction surveys (1-5; satisfied = 4-5, unhappy = 1-2):")
    for by, data in surveys.items():
        click.echo(f"by {by}:")
        click.echo(table(list(data)))


COMMANDS = [report_cmd]
