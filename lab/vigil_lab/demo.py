"""``vigil demo``: the whole loop on the embedded default, from one command, with no credentials.

Seeded demo data -> import into SQLite -> scan -> console delivery (each channel rendered as it
would be sent, in the account holder's language) -> the confirmation page served locally with the
links printed.  Answering "not me" in the browser freezes the account and opens a P1 ticket; the
background delivery loop then prints the freeze guidance message.

What it prints is meant to be exactly true: the alert count is the list's length (shadow alerts
marked as such), every confirmation link sent is listed (or how many are not), an SMS row shows
its reply code because an SMS carries no link, and the last lines are the exact commands that
look at the demo's accounts and tickets afterwards.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

from alerts.store.models import AlertRow, OutboxRow, Ticket
from vigil.bootstrap import bootstrap
from vigil.daemon import deliver_once, escalate_all, scan_until_caught_up
from vigil.importer import import_dir
from vigil.settings import load_settings

MAX_LINKS = 40  # link lines printed; beyond, the demo says how many more there are
LINK_CHANNELS = ("email", "push")  # the channels whose message carries the link (an SMS carries reply codes)


def run_demo(*, db_url: str, data_dir: str, accounts: int, seed: int, serve: bool, port: int,
             config_path: str | None = None, days: int = 21) -> dict[str, Any]:
    from vigil_lab import synth

    if db_url.startswith("sqlite:///") and db_url != "sqlite:///:memory:":
        for suffix in ("", "-wal", "-shm"):
            Path(db_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    frames, labels = synth.generate_with_labels(seed=seed, accounts=accounts, days=days, start=start)
    synth.write_dir(frames, data_dir, fmt="csv")
    click.secho(f"1. generated demo data for {accounts} accounts over {days} days in {data_dir}/ "
                f"({sum(len(f) for n, f in frames.items() if n != 'accounts')} events; "
                f"{len(labels['planted'])} planted incidents)", bold=True)

    settings = load_settings(config_path, database_url=db_url,
                             web={"base_url": f"http://127.0.0.1:{port}", "port": port})
    app = bootstrap(settings)
    rep = import_dir(app.engine, data_dir)
    bad = sum(len(q) for q in rep.quarantined.values())
    click.secho(f"2. imported into {db_url}: " + ", ".join(f"{t} {n}" for t, n in rep.rows.items())
                + (f"; {bad} row(s) quarantined at import" if bad else ""), bold=True)

    totals = scan_until_caught_up(app)
    with app.sessions() as s:
        alerts = list(s.scalars(select(AlertRow).order_by(AlertRow.ts, AlertRow.id)))
    click.secho(f"3. scanned {totals['rows']} rows in {totals['batches']} batch(es): {_alert_count(alerts)}; "
                f"{totals['quarantined']} quarantined row(s)", bold=True)
    for a in alerts:
        click.echo(f"   {a.ts:%Y-%m-%d %H:%M}  {a.severity:<8} {a.rule_id:<30} account {a.account_id:<10} "
                   f"events {', '.join(a.event_ids)}{_mode_note(a)}")

    click.secho("4. delivering through the console channel (standing in for push, SMS and email):", bold=True)
    report = deliver_once(app)
    links = list(report.links)
    while report.claimed:
        report = deliver_once(app)
        links += report.links
    with app.sessions() as s:
        by_status: dict[str, int] = {
            str(k): int(v) for k, v in s.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))}
        tickets = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.open_key.is_not(None))) or 0
        asking = list(s.scalars(select(AlertRow).where(AlertRow.confirm.is_(True), AlertRow.mode == "live")
                                .order_by(AlertRow.ts, AlertRow.id)))
        sms_sent = set(s.scalars(select(OutboxRow.alert_id).where(OutboxRow.channel == "sms",
                                                                  OutboxRow.status == "delivered")))
    outbox = ", ".join(f"{n} {st}" for st, n in sorted(by_status.items())) or "empty"
    click.secho(f"   outbox: {outbox}; tickets open: {tickets}", bold=True)
    _print_links(asking, links, sms_sent)
    result = {"alerts": len(alerts), "links": links, "outbox": by_status, "tickets": tickets}
    _print_next_steps(db_url, alerts, serving=serve)
    if not serve:
        app.close()
        return result
    _background_loop(app)
    import uvicorn

    from vigil.redact import uvicorn_log_config
    from vigil.web.app import create_app

    click.secho(f"7. serving the confirmation page on http://127.0.0.1:{port}  (Ctrl-C to stop)", bold=True)
    uvicorn.run(create_app(app), host="127.0.0.1", port=port, log_level="warning", log_config=uvicorn_log_config())
    app.close()
    return result


def _alert_count(alerts: list[AlertRow]) -> str:
    modes = Counter(a.mode for a in alerts)
    parts = [f"{modes.get('live', 0)} live (the account holder is told)"]
    if modes.get("shadow"):
        parts.append(f"{modes['shadow']} shadow (recorded for investigators, sent to nobody)")
    suppressed = sum(1 for a in alerts if a.status == "suppressed")
    if suppressed:
        parts.append(f"{suppressed} suppressed (a travel notice or an allow-listed address)")
    return f"{len(alerts)} alert(s): " + ", ".join(parts)


def _mode_note(a: AlertRow) -> str:
    if a.mode == "shadow":
        return "   [shadow]"
    if a.status == "suppressed":
        return "   [suppressed]"
    return ""


def _print_links(asking: list[AlertRow], links: list[tuple[str, str, str]], sms_sent: set[str | None]) -> None:
    """Every link that went out, grouped by alert; an SMS row shows its reply codes instead."""
    if not asking:
        return
    by_alert: dict[str, list[tuple[str, str]]] = {}
    for alert_id, channel, link in links:
        if channel in LINK_CHANNELS:
            by_alert.setdefault(alert_id, []).append((channel, link))
    sent = sum(len(v) for v in by_alert.values())
    click.secho(f"5. {len(asking)} alert(s) ask \"was this you?\"; {sent} confirmation link(s) went out. "
                f"Open one in a browser: the page changes nothing until you press a button.", bold=True)
    shown = 0
    for a in asking:
        rows = by_alert.get(a.id, [])
        sms = a.id in sms_sent and a.sms_code
        if not rows and not sms:
            continue
        if shown >= MAX_LINKS:
            break
        click.echo(f"   {a.account_id}  {a.rule_id}  ({a.id})")
        for channel, link in rows:
            if shown >= MAX_LINKS:
                break
            click.echo(f"     {channel:<6} {link}")
            shown += 1
        if sms:
            click.echo(f"     {'sms':<6} no link in an SMS: the holder replies \"N {a.sms_code}\" (not me) "
                       f"or \"Y {a.sms_code}\"")
    if sent > shown:
        click.echo(f"   ... and {sent - shown} more link(s) not shown (run with fewer --accounts to see all)")


def vigil_command() -> str:
    """How the person who started the demo runs ``vigil``: ``vigil`` when that is on the PATH,
    else the path they used (``.venv/bin/vigil`` from scripts/demo)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name != "vigil":
        return "vigil"
    on_path = shutil.which("vigil")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "vigil"
    p = Path(argv0).absolute()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _print_next_steps(db_url: str, alerts: list[AlertRow], *, serving: bool) -> None:
    """The exact commands that look at the demo afterwards (the database stays when the demo stops)."""
    if not alerts:
        return
    live = [a for a in alerts if a.mode == "live"] or alerts
    busiest = Counter(a.account_id for a in live).most_common(1)[0][0]
    vigil = f"{vigil_command()} --db {shlex.quote(db_url)}"
    when = "in another terminal while this one serves, or after Ctrl-C" if serving else "now or later"
    click.secho(f"6. look at the demo's accounts and tickets ({when}):", bold=True)
    click.echo(f"   cd {shlex.quote(str(Path.cwd()))}")
    for args, why in (("accounts list", "accounts with alerts, tickets or a freeze"),
                      (f"accounts show {busiest}", "status, freeze, open alerts, tickets, last logins"),
                      ("tickets list", "the tickets the alerts opened"),
                      (f"alerts list --account {busiest}", "one account's alerts"),
                      ("accounts unfreeze ACCOUNT --reason '...'", "after \"not me\" on a page froze ACCOUNT")):
        click.echo(f"   {vigil} {args}   # {why}")


def _background_loop(app: Any) -> None:
    """Deliver and escalate every two seconds while the page is served (guidance after "not me")."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(2.0):
            try:
                deliver_once(app)
                escalate_all(app)
            except Exception as e:  # keep serving; show the problem
                click.echo(f"background delivery failed: {e}", err=True)

    threading.Thread(target=loop, name="vigil-demo-deliver", daemon=True).start()
