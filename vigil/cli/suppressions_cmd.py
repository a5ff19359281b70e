"""``vigil suppressions add|list|end``: travel notices and allow-listed addresses, by staff."""

from __future__ import annotations

import json
from datetime import datetime

import click

from vigil.errors import VigilError


def _app(ctx: click.Context):  # type: ignore[no-untyped-def]
    from vigil.cli.core import _app as core_app

    return core_app(ctx)


@click.group("suppressions")
def suppressions_group() -> None:
    """User-declared suppressions: travel notices and allow-listed withdrawal addresses."""


@suppressions_group.command("add")
@click.option("--account", "account_id", required=True)
@click.option("--travel", "countries", default=None, help="Comma-separated country codes, e.g. JP,KR.")
@click.option("--address", default=None, help="An allow-listed withdrawal address.")
@click.option("--network", default=None)
@click.option("--from", "starts", required=True, help="ISO 8601 with offset, e.g. 2026-12-01T00:00:00Z")
@click.option("--until", "until", required=True)
@click.option("--by", "created_by", default="staff:cli", show_default=True)
@click.pass_context
def add(ctx: click.Context, account_id: str, countries: str | None, address: str | None, network: str | None,
        starts: str, until: str, created_by: str) -> None:
    from pydantic import ValidationError

    from alerts.suppressions import SuppressionIn, add_suppression, as_dict

    if bool(countries) == bool(address):
        raise click.UsageError("give either --travel COUNTRIES or --address ADDRESS")
    try:
        spec = SuppressionIn(
            account_id=account_id, kind="travel" if countries else "address",
            countries=countries.split(",") if countries else None, address=address, network=network,
            starts_at=datetime.fromisoformat(starts), expires_at=datetime.fromisoformat(until),
            created_by=created_by)
    except (ValidationError, ValueError) as e:
        msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors()) \
            if isinstance(e, ValidationError) else str(e)
        raise VigilError(f"suppression refused: {msg}") from None
    app = _app(ctx)
    with app.sessions.begin() as s:
        click.echo(json.dumps(as_dict(add_suppression(s, spec, now=app.clock()))))
    app.close()


@suppressions_group.command("list")
@click.option("--account", "account_id", default=None)
@click.option("--all", "show_all", is_flag=True, help="Include expired ones.")
@click.pass_context
def list_cmd(ctx: click.Context, account_id: str | None, show_all: bool) -> None:
    from alerts.suppressions import as_dict, list_suppressions

    app = _app(ctx)
    with app.sessions() as s:
        for row in list_suppressions(s, account_id, active_at=None if show_all else app.clock()):
            click.echo(json.dumps(as_dict(row)))
    app.close()


@suppressions_group.command("end")
@click.argument("suppression_id", type=int)
@click.pass_context
def end(ctx: click.Context, suppression_id: int) -> None:
    from alerts.suppressions import as_dict, end_suppression

    app = _app(ctx)
    with app.sessions.begin() as s:
        row = end_suppression(s, suppression_id, now=app.clock())
        if row is None:
            raise VigilError(f"no suppression {suppression_id}")
        click.echo(json.dumps(as_dict(row)))
    app.close()


COMMANDS = [suppressions_group]
