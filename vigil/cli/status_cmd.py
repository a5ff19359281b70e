"""``vigil status``: the daemon's runs and failures and what waits in the outbox, from the database."""

from __future__ import annotations

import json

import click

from vigil.errors import VigilError


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Runs, failures (error class and message), outbox depth and the oldest waiting message."""
    from sqlalchemy.exc import DBAPIError

    from alerts.store.db import make_engine, session_factory
    from vigil.cli.core import _redact, _settings
    from vigil.status import render_text, status_report

    settings = _settings(ctx)
    engine = make_engine(settings.database_url)
    try:
        from datetime import UTC, datetime

        report = status_report(session_factory(engine), datetime.now(UTC))
    except DBAPIError as e:
        first = (str(e.orig or e).strip().splitlines() or [type(e).__name__])[0]
        raise VigilError(f"cannot read the status from {_redact(settings.database_url)}: {first}") from None
    finally:
        engine.dispose()
    click.echo(json.dumps(report, indent=2) if as_json else render_text(report))


COMMANDS = [status_cmd]
