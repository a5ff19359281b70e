"""Core commands: db, import, scan, deliver, escalate, run, serve, backtest, alerts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from vigil.errors import ConfigError, VigilError

log = logging.getLogger("vigil")


def _settings(ctx: click.Context, **overrides: Any) -> Any:
    """The settings for a command that opens the database: ``--db`` wins over the environment and the
    file; with no database setting at all, one line on stderr says which database is used."""
    from vigil.settings import load_settings

    root = ctx.find_root()
    obj = root.obj or {}
    if obj.get("db_url"):
        overrides.setdefault("database_url", obj["db_url"])
    s = load_settings(obj.get("config_path"), **{k: v for k, v in overrides.items() if v is not None})
    if "database_url" not in s.model_fields_set:
        click.echo(f"vigil: {default_database_note(s.database_url)}", err=True)
    return s


def default_database_note(url: str) -> str:
    """"no database configured (...): using sqlite:///vigil.db, a new file /srv/vigil.db"."""
    where = ""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        p = Path(url.removeprefix("sqlite:///")).absolute()
        where = f", {'the file' if p.exists() else 'a new file'} {p}"
    return (f"no database configured (--db URL, VIGIL_DATABASE_URL or database_url in the settings): "
            f"using {_redact(url)}{where}")


def _app(ctx: click.Context, **overrides: Any) -> Any:
    from vigil.bootstrap import bootstrap

    return bootstrap(_settings(ctx, **overrides))


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply the Alembic migrations to the configured database."""
    from alerts.store.db import upgrade

    s = _settings(ctx)
    upgrade(s.database_url, revision)
    click.echo(f"database at {revision}: {_redact(s.database_url)}")


@click.command("import")
@click.argument("directory", type=click.Path(file_okay=False))
@click.pass_context
def import_cmd(ctx: click.Context, directory: str) -> None:
    """Load a data directory (NAME.csv / NAME.parquet per table) into the source tables."""
    from alerts.store.db import make_engine, upgrade
    from vigil.importer import import_dir

    s = _settings(ctx)
    upgrade(s.database_url)
    engine = make_engine(s.database_url)
    try:
        rep = import_dir(engine, directory)
    finally:
        engine.dispose()
    for t, n in rep.rows.items():
        click.echo(f"{t}: {n} row(s)")
    for t, cols in rep.ignored_columns.items():
        click.echo(f"{t}: ignored column(s) not in the contract: {', '.join(cols)}", err=True)
    if not rep.rows:
        raise VigilError(f"{directory}: no contract tables found (expected logins.csv, transactions.parquet, ...)")


@click.command("scan")
@click.option("--once", is_flag=True, help="Run one cycle (catching up batch by batch) and exit.")
@click.option("--max-batches", type=int, default=None)
@click.pass_context
def scan_cmd(ctx: click.Context, once: bool, max_batches: int | None) -> None:
    """Scan new source rows: detectors, rules, alerts, tickets, outbox."""
    from vigil.daemon import scan_until_caught_up

    if not once:
        raise click.UsageError("use 'vigil scan --once' for one cycle, or 'vigil run' for the daemon")
    app = _app(ctx)
    try:
        totals = scan_until_caught_up(app, max_batches=max_batches)
    finally:
        app.close()
    click.echo(json.dumps(totals))


@click.command("deliver")
@click.option("--once", is_flag=True, required=True, help="Drain the outbox once and exit.")
@click.pass_context
def deliver_cmd(ctx: click.Context, once: bool) -> None:
    """Send pending outbox messages."""
    from vigil.daemon import deliver_once

    app = _app(ctx)
    try:
        rep = deliver_once(app)
    finally:
        app.close()
    click.echo(json.dumps({k: v for k, v in rep.__dict__.items() if k != "outcomes"}))


@click.command("escalate")
@click.option("--once", is_flag=True, required=True)
@click.pass_context
def escalate_cmd(ctx: click.Context, once: bool) -> None:
    """Remind, expire and escalate unanswered alerts."""
    from vigil.daemon import escalate_all

    app = _app(ctx)
    try:
        rep = escalate_all(app)
    finally:
        app.close()
    click.echo(json.dumps(rep.__dict__))


@click.command("run")
@click.pass_context
def run_cmd(ctx: click.Context) -> None:
    """Run the daemon: scan, deliver and escalate on a schedule until SIGTERM."""
    from vigil.daemon import Daemon

    Daemon(_app(ctx)).run_forever()


@click.command("serve")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.pass_context
def serve_cmd(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the confirmation pages, webhooks, health and metrics."""
    import uvicorn

    from vigil.web.app import create_app

    app = _app(ctx)
    uvicorn.run(create_app(app), host=host or app.settings.web.host, port=port or app.settings.web.port,
                log_level="info")


@click.command("backtest")
@click.option("--data", "data", required=True, type=click.Path(file_okay=False), help="Data directory.")
@click.option("--rules", "rules_path", type=click.Path(), default=None, help="Rule file or directory.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="alerts.csv or alerts.jsonl")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="A file of attack event ids (one per line, or a CSV with an event_id column).")
@click.option("--compare", "compare_path", type=click.Path(), default=None,
              help="Older rules to compare with: which alerts each rule adds or drops.")
def backtest_cmd(data: str, rules_path: str | None, out: str, labels: str | None, compare_path: str | None) -> None:
    """Run rules over a data directory from a clean state; deliver nothing; write the alerts."""
    from vigil.backtest import run_backtest, write_alerts

    if not Path(data).is_dir():
        raise ConfigError(f"{data}: data directory not found")
    res = run_backtest(data, rules_path)
    write_alerts(res.alerts, out)
    click.echo(res.summary())
    try:
        from rules.report import compare, per_rule_report
    except ImportError:
        per_rule_report = None  # type: ignore[assignment]
    if per_rule_report is not None:
        click.echo(_report_text(per_rule_report, res, labels, data))
        if compare_path:
            old = run_backtest(data, compare_path)
            click.echo(_compare_text(compare(old.alerts, res.alerts)))
    click.echo(f"wrote {len(res.alerts)} alert(s) to {out}")


def _report_text(per_rule_report: Any, res: Any, labels: str | None, data: str) -> str:
    from vigil.reporting import data_days, format_rule_report, read_labels

    lab = read_labels(labels) if labels else None
    return format_rule_report(per_rule_report(res.alerts, lab, data_days(data)))


def _compare_text(diff: Any) -> str:
    from vigil.reporting import format_compare

    return format_compare(diff)


@click.group("alerts")
def alerts_group() -> None:
    """Inspect alerts."""


@alerts_group.command("list")
@click.option("--status", default=None)
@click.option("--account", default=None)
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def alerts_list(ctx: click.Context, status: str | None, account: str | None, limit: int) -> None:
    from sqlalchemy import select

    from alerts.store.models import AlertRow

    app = _app(ctx)
    with app.sessions() as s:
        q = select(AlertRow).order_by(AlertRow.ts.desc()).limit(limit)
        if status:
            q = q.where(AlertRow.status == status)
        if account:
            q = q.where(AlertRow.account_id == account)
        for a in s.scalars(q):
            click.echo(f"{a.id}  {a.ts:%Y-%m-%d %H:%M}  {a.severity:<8} {a.status:<10} {a.account_id:<12} "
                       f"{a.rule_id}  events={','.join(a.event_ids)}")
    app.close()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


COMMANDS = [db_group, import_cmd, scan_cmd, deliver_cmd, escalate_cmd, run_cmd, serve_cmd, backtest_cmd,
            alerts_group]
