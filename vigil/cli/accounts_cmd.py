"""``vigil accounts``: list the accounts that need a look, show one, unfreeze one.

The logic lives in :mod:`alerts.accounts` (so a web console does the same); this module prints.
Staff actions are recorded under ``--as`` (default ``staff:$USER``), like ``vigil tickets``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from vigil.errors import VigilError


@contextmanager
def _errors() -> Iterator[None]:
    from alerts.accounts import AccountError

    try:
        yield
    except AccountError as e:
        raise VigilError(str(e)) from None


ACTORS = {"user": "the account holder", "system": "Vigil"}  # staff act as "staff:NAME"


def _who(actor: str) -> str:
    return ACTORS.get(actor, actor)


def _when(iso: str | None) -> str:
    return "-" if not iso else iso[:16].replace("T", " ") + " UTC"


@click.group("accounts")
def accounts_group() -> None:
    """Accounts: which need a look, one account's state, unfreezing."""


@accounts_group.command("list")
@click.option("--frozen", is_flag=True, help="Only frozen accounts.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, frozen: bool, limit: int, as_json: bool) -> None:
    """Frozen accounts and accounts with alerts or open tickets, frozen first."""
    from alerts.accounts import summaries
    from vigil.cli.tickets_cmd import _app

    with _app(ctx) as app, app.sessions() as s:
        rows = summaries(s, frozen_only=frozen, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(f"{r['account_id']:<14} {r['status']:<8} open alerts {r['open_alerts']:<3} "
                   f"alerts {r['alerts']:<3} open tickets {r['open_tickets']:<3} last alert {_when(r['last_alert'])}")
    click.echo(f"{len(rows)} account(s)" + ("" if len(rows) < limit else f" (first {limit}; --limit for more)"))


@accounts_group.command("show")
@click.argument("account_id")
@click.option("--logins", "n_logins", default=5, show_default=True, type=click.IntRange(0, 100),
              help="How many of the latest logins to show.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show_cmd(ctx: click.Context, account_id: str, n_logins: int, as_json: bool) -> None:
    """Status, what froze it and when, open alerts, tickets, last logins and the audit trail."""
    from alerts.accounts import overview
    from vigil.accounts import recent_logins
    from vigil.cli.tickets_cmd import _app

    with _app(ctx) as app:
        with app.sessions() as s:
            view = overview(s, account_id)
        logins = recent_logins(app.source, account_id, n_logins) if n_logins else []
    if not view.known and not logins:
        raise VigilError(f"no account {account_id!r}: no alerts, tickets or account data for it in this database")
    data = {**view.as_dict(), "logins": logins}
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    click.echo(_text(data))


def _text(d: dict[str, Any]) -> str:
    out = [f"{d['account_id']}  {d['status'].upper()}"]
    f = d["freeze"]
    if f:
        out.append(f"  frozen {_when(f['at'])} by {_who(f['actor'])}: {f['reason'] or '(no reason recorded)'}")
    c = d["contact"]
    if c:
        reach = [k for k in ("email", "phone", "push") if c.get(k)]
        opted_out = "; SMS opted out" if c.get("sms_opt_out") else ""
        out.append(f"  locale {c.get('locale') or '-'}, time zone {c.get('timezone') or '-'}, "
                   f"tier {c.get('tier') or '-'}; reachable by {', '.join(reach) or 'nothing'}{opted_out}")
    out.append(f"open alerts ({len(d['open_alerts'])}):")
    out += [_alert(a) for a in d["open_alerts"]] or ["  none"]
    closed = [a for a in d["recent_alerts"] if a not in d["open_alerts"]]
    if closed:
        out.append("other recent alerts:")
        out += [_alert(a) for a in closed]
    out.append(f"tickets ({len(d['tickets'])}):")
    out += [f"  {t['id']}  {t['priority']}  {t['status']:<12} {t['queue']:<15} {t['subject']}"
            for t in d["tickets"]] or ["  none"]
    out.append(f"last logins ({len(d['logins'])}):")
    out += [_login(x) for x in d["logins"]] or ["  none in the source"]
    out.append("audit trail:")
    out += [f"  {_when(e['at'])}  {e['event']:<9} by {_who(e['actor'])}: {e['reason']}"
            for e in d["trail"]] or ["  empty"]
    if d["status"] == "frozen":
        out.append(f"to unfreeze: vigil accounts unfreeze {d['account_id']} --reason \"...\"")
    return "\n".join(out)


def _alert(a: dict[str, Any]) -> str:
    shadow = "  (shadow: recorded, not sent)" if a["mode"] == "shadow" else ""
    answer = f"  answer {a['answer']}" if a.get("answer") else ""
    return f"  {a['id']}  {_when(a['ts'])}  {a['severity']:<8} {a['status']:<10} {a['rule_id']}{answer}{shadow}"


def _login(x: dict[str, Any]) -> str:
    from detectors.useragent import parse

    ok = {"true": "ok", "1": "ok", "false": "failed", "0": "failed"}.get(str(x.get("success")).lower(), "?")
    place = " ".join(str(v) for v in (x.get("country"), x.get("city")) if v) or "-"
    ua = x.get("user_agent")
    agent = ""
    if ua:
        p = parse(str(ua))
        b = p.browser_version if p.browser != "Other" else None
        o = p.os_version if p.os != "Other" else None
        agent = f"{b} on {o}" if b and o else (b or o or "")
    device = " ".join(v for v in (agent, f"({x['device_id']})" if x.get("device_id") else "") if v)
    return f"  {_when(x.get('ts'))}  {ok:<6} {place:<20} {x.get('ip') or '-':<16} {device or '-'}"


@accounts_group.command("unfreeze")
@click.argument("account_id")
@click.option("--reason", required=True, help="Why (kept in the account's audit trail, the alert and its tickets).")
@click.option("--as", "actor", default=None, help="Who is acting (default: staff:$USER).")
@click.pass_context
def unfreeze_cmd(ctx: click.Context, account_id: str, reason: str, actor: str | None) -> None:
    """Lift a freeze; the exchange's account service is told through the freeze hook."""
    from alerts.accounts import unfreeze_account
    from vigil.cli.tickets_cmd import _actor, _app

    who = _actor(actor)
    with _errors(), _app(ctx) as app, app.sessions.begin() as s:
        lifted = unfreeze_account(s, account_id, now=app.clock(), actor=who, reason=reason)
    since = _when(lifted.at.isoformat() if lifted.at else None)
    click.echo(f"{account_id}: unfrozen by {who} (it was frozen {since} "
               f"by {_who(lifted.actor)}: {lifted.reason or 'no reason recorded'})")


COMMANDS = [accounts_group]
