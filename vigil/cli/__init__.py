"""The ``vigil`` command.  Subcommands live in sibling modules and are registered below.

Errors a person can act on (:class:`vigil.errors.VigilError`) print one line and exit with their
code; a traceback is a bug.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from vigil.errors import VigilError


class VigilGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VigilError as e:
            click.echo(f"vigil: {e}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=VigilGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="VIGIL_CONFIG",
              help="Settings YAML file (or VIGIL_CONFIG).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default from settings).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """Vigil: proactive account alerts for cryptocurrency exchanges."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["log_level"] = log_level
    logging.basicConfig(
        level=(log_level or "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from vigil.redact import install

    install()  # tokens, phone numbers and email addresses never reach a log line


def _register() -> None:
    from vigil.cli import core

    for cmd in core.COMMANDS:
        main.add_command(cmd)
    # optional command modules added by later work register themselves the same way
    import importlib

    for mod in ("rules_cmd", "tickets_cmd", "model_cmd", "report_cmd", "eval_cmd", "suppressions_cmd"):
        try:
            m = importlib.import_module(f"vigil.cli.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"vigil.cli.{mod}":
                raise
            continue
        for cmd in m.COMMANDS:
            main.add_command(cmd)


_register()
