"""The ``vigil`` command.  Subcommands live in sibling modules and are registered below.

Commands from outside the product -- the lab's ``demo`` and ``eval`` (package ``vigil_lab``) and
any third party's -- plug in through the ``vigil.commands`` entry-point group and are loaded only
when named (or listed by ``--help``), so they cost nothing at start-up.  The product never imports
the lab: when it is not installed, ``vigil demo`` and ``vigil eval`` say how to install it.

Errors a person can act on (:class:`vigil.errors.VigilError`) print one line and exit with their
code; a traceback is a bug.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import click

from vigil.errors import ConfigError, VigilError

COMMAND_GROUP = "vigil.commands"
LAB_COMMANDS = {"demo": "the whole loop on generated demo data",
                "eval": "detection quality on generated, labelled data"}
LAB_INSTALL = "pip install 'vigil-alerts[lab]'"


class VigilGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VigilError as e:
            click.echo(f"vigil: {e}", err=True)
            sys.exit(e.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_plugins(), *LAB_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        ep = _plugins().get(cmd_name)
        if ep is not None:
            cmd = _load(ep)
            if cmd is not None:
                self.add_command(cmd, cmd_name)
                return cmd
        if cmd_name in LAB_COMMANDS:
            return _lab_missing(cmd_name)
        return None


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def _load(ep: EntryPoint) -> click.Command | None:
    """The command an entry point names; ``None`` when its package (or one of its dependencies) is missing."""
    try:
        cmd = ep.load()
    except ModuleNotFoundError:
        return None
    if not isinstance(cmd, click.Command):
        raise LookupError(f"entry point {ep.name!r} in group {COMMAND_GROUP!r} ({ep.value}) is not a click command")
    return cmd


def _lab_missing(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                   add_help_option=False, help=f"{LAB_COMMANDS[name].capitalize()} (needs the Vigil lab).")
    def missing() -> None:
        raise ConfigError(f"'vigil {name}' is part of the Vigil lab, which is not installed: {LAB_INSTALL}")

    return missing


@click.group(cls=VigilGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="VIGIL_CONFIG",
              help="Settings YAML file (or VIGIL_CONFIG).")
@click.option("--db", "db_url", default=None, metavar="URL",
              help="Database URL, e.g. sqlite:///vigil.db or postgresql+psycopg://... "
                   "(else VIGIL_DATABASE_URL, else database_url in the settings).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default from settings).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, db_url: str | None, log_level: str | None) -> None:
    """Vigil: proactive account alerts for cryptocurrency exchanges."""
    _collect_before_teardown()
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["db_url"] = db_url
    ctx.obj["log_level"] = log_level
    from vigil.logs import configure

    configure(log_level or "INFO")  # until the settings are read: then their log_level and log_format


_COLLECT_AT_EXIT: list[bool] = []


def _collect_before_teardown() -> None:
    """Parquet readers that end up in reference cycles must be freed while Arrow is still alive: a
    reader's thread met in the interpreter's final teardown aborts the process (exit 134 after the
    work is done, apache/arrow#34314). atexit runs before that teardown; registered once per process
    (a test runner invokes the CLI many times)."""
    if _COLLECT_AT_EXIT:
        return
    import atexit
    import gc

    atexit.register(gc.collect)
    _COLLECT_AT_EXIT.append(True)


def _register() -> None:
    from vigil.cli import core

    for cmd in core.COMMANDS:
        main.add_command(cmd)
    import importlib

    for mod in ("rules_cmd", "tickets_cmd", "model_cmd", "report_cmd", "suppressions_cmd", "accounts_cmd",
                "status_cmd", "staff_cmd", "profiles_cmd", "tune_cmd"):
        m = importlib.import_module(f"vigil.cli.{mod}")
        for cmd in m.COMMANDS:
            main.add_command(cmd)


_register()
