"""``vigil staff add|list|set|password``: console accounts (argon2 passwords, roles, audit)."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from typing import Any

import click


def _app(ctx: click.Context):  # type: ignore[no-untyped-def]
    from vigil.cli.core import _app as core_app

    return core_app(ctx)


def _read_password(from_stdin: bool, env: str | None) -> str:
    """From stdin (``--password-stdin``), an environment variable (``--password-env``), or a prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if env:
        value = os.environ.get(env)
        if not value:
            raise click.UsageError(f"--password-env: the environment variable {env} is empty or not set")
        return value
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise click.UsageError("the two passwords differ")
    return first


@click.group("staff")
def staff_group() -> None:
    """Staff accounts of the web console (/console)."""


@staff_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "analyst", "admin"]), default="viewer", show_default=True)
@click.option("--name", "display_name", default="", help="Shown in the console and on timelines.")
@click.option("--locale", default="en", show_default=True, help="Console language (en, zh-CN, zh-TW, ko, ja).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--password-env", default=None, metavar="VAR", help="Read the password from this variable.")
@click.pass_context
def add(ctx: click.Context, username: str, role: str, display_name: str, locale: str, password_stdin: bool,
        password_env: str | None) -> None:
    """Create a staff account with an argon2-hashed password."""
    from vigil.staff import add_staff

    password = _read_password(password_stdin, password_env)
    app = _app(ctx)
    try:
        with app.sessions.begin() as s:
            add_staff(s, username, password, role, now=app.clock(), display_name=display_name, locale=locale,
                      actor=f"cli:{getpass.getuser()}")
    finally:
        app.close()
    click.echo(f"staff user {username} added with role {role}")


@staff_group.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Staff accounts, their roles and last logins."""
    from sqlalchemy import select

    from alerts.store.models import StaffUser
    from vigil.reporting import table

    app = _app(ctx)
    try:
        with app.sessions() as s:
            rows: list[Mapping[str, Any]] = [
                {"username": u.username, "name": u.display_name, "role": u.role, "active": u.active,
                 "last_login": u.last_login_at.isoformat() if u.last_login_at else None}
                    for u in s.scalars(select(StaffUser).order_by(StaffUser.username))]
    finally:
        app.close()
    click.echo(table(rows))


@staff_group.command("set")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "analyst", "admin"]), required=True)
@click.option("--active/--inactive", default=None, help="An inactive account cannot sign in; its sessions end.")
@click.pass_context
def set_(ctx: click.Context, username: str, role: str, active: bool | None) -> None:
    """Change a staff member's role (and whether they may sign in)."""
    from vigil.staff import set_role

    app = _app(ctx)
    try:
        with app.sessions.begin() as s:
            set_role(s, username, role, now=app.clock(), actor=f"cli:{getpass.getuser()}", active=active)
    finally:
        app.close()
    click.echo(f"staff user {username}: role {role}" + ("" if active is None else f", active {active}"))


@staff_group.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True)
@click.option("--password-env", default=None, metavar="VAR")
@click.pass_context
def password(ctx: click.Context, username: str, password_stdin: bool, password_env: str | None) -> None:
    """Set a new password (ends the person's open sessions)."""
    from vigil.staff import set_password

    pw = _read_password(password_stdin, password_env)
    app = _app(ctx)
    try:
        with app.sessions.begin() as s:
            set_password(s, username, pw, now=app.clock(), actor=f"cli:{getpass.getuser()}")
    finally:
        app.close()
    click.echo(f"staff user {username}: password changed")


COMMANDS = [staff_group]
