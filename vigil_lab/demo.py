"""``vigil demo``: the whole loop on the embedded default, from one command, with no credentials.

Seeded demo data -> import into SQLite -> scan -> console delivery (each channel rendered as it
would be sent, in the account holder's language) -> the confirmation page served locally with the
links printed.  Answering "not me" in the browser freezes the account and opens a P1 ticket; the
background delivery loop then prints the freeze guidance message.
"""

from __future__ import annotations

import threading
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
    click.secho(f"3. scanned {totals['rows']} rows in {totals['batches']} batch(es): "
                f"{totals['alerts']} alert(s), {totals['quarantined']} quarantined row(s)", bold=True)
    with app.sessions() as s:
        for a in s.scalars(select(AlertRow).order_by(AlertRow.ts)):
            click.echo(f"   {a.ts:%Y-%m-%d %H:%M}  {a.severity:<8} {a.rule_id:<30} account {a.account_id:<10} "
                       f"events {', '.join(a.event_ids)}")

    click.secho("4. delivering through the console channel (standing in for push, SMS and email):", bold=True)
    report = deliver_once(app)
    links = list(report.links)
    while report.claimed:
        report = deliver_once(app)
        links += report.links
    with app.sessions() as s:
        by_status: dict[str, int] = {
            str(k): int(v) for k, v in s.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))}
        tickets = s.scalar(select(func.count()).select_from(Ticket)) or 0
    click.secho(f"   outbox: {by_status}; tickets open: {tickets}", bold=True)
    if links:
        click.secho("5. confirmation links (open one in a browser; only the buttons act):", bold=True)
        for alert_id, channel, link in links[:12]:
            click.echo(f"   {alert_id} ({channel}): {link}")
    result = {"alerts": totals["alerts"], "links": links, "outbox": by_status, "tickets": tickets}
    if not serve:
        app.close()
        return result
    _background_loop(app)
    import uvicorn

    from vigil.redact import uvicorn_log_config
    from vigil.web.app import create_app

    click.secho(f"6. serving the confirmation page on http://127.0.0.1:{port}  (Ctrl-C to stop)", bold=True)
    uvicorn.run(create_app(app), host="127.0.0.1", port=port, log_level="warning", log_config=uvicorn_log_config())
    app.close()
    return result


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
