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
    from vigil.logs import configure
    from vigil.settings import load_settings

    root = ctx.find_root()
    obj = root.obj or {}
    if obj.get("db_url"):
        overrides.setdefault("database_url", obj["db_url"])
    s = load_settings(obj.get("config_path"), **{k: v for k, v in overrides.items() if v is not None})
    configure(obj.get("log_level") or s.log_level, s.log_format)
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
    """Load a data directory (NAME.csv / NAME.parquet per table) into the source tables.

    The configuration's source.tables maps an export's own file and column names; every table is
    imported on its own, bad rows are quarantined, and the exit code is 4 when a file was refused or
    every row of a table was quarantined.
    """
    from alerts.store.db import make_engine, upgrade
    from vigil.importer import import_dir

    s = _settings(ctx)
    if not Path(directory).is_dir():
        raise ConfigError(f"{directory}: data directory not found")
    upgrade(s.database_url)
    engine = make_engine(s.database_url)
    try:
        rep = import_dir(engine, directory, s.source.tables)
    finally:
        engine.dispose()
    for t, n in rep.rows.items():
        q = rep.quarantined.get(t, [])
        click.echo(f"{t}: {n} row(s)" + (f", {len(q)} quarantined" if q else ""))
        _echo_quarantined(q)
    for t, cols in rep.ignored_columns.items():
        click.echo(f"{t}: ignored column(s) not in the contract: {', '.join(cols)}", err=True)
    for note in rep.notes:
        click.echo(f"note: {note}", err=True)
    _fail_on_unusable(rep.problems, rep.all_quarantined)
    if not rep.rows:
        raise VigilError(f"{directory}: no contract tables found (expected logins.csv, transactions.parquet, ...)")


def _echo_quarantined(quarantined: list[Any], limit: int = 5) -> None:
    for q in quarantined[:limit]:
        click.echo(f"  quarantined {q.ref}: {q.reason}", err=True)
    if len(quarantined) > limit:
        click.echo(f"  ... and {len(quarantined) - limit} more (table vigil_quarantine)", err=True)


def _fail_on_unusable(problems: dict[str, str], all_quarantined: list[str], *, shown: bool = False) -> None:
    """Exit 4 when part of the input was unusable, after everything usable was used.

    ``shown``: the reasons were printed already (the backtest summary); then name the tables only.
    """
    from vigil.errors import InputError

    if shown and (problems or all_quarantined):
        what = [f"{t} (file refused)" for t in problems] + [f"{t} (every row quarantined)" for t in all_quarantined]
        raise InputError(f"part of the input was unusable: {', '.join(what)}; the reasons are above")
    lines = [f"refused: {p}" for p in problems.values()]
    lines += [f"every row of {t} was quarantined: nothing of it was used" for t in all_quarantined]
    if lines:
        raise InputError("\n".join(lines))


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
    # counts only: the links carry confirmation tokens, which never go to stdout or a log
    click.echo(json.dumps({k: v for k, v in rep.__dict__.items() if k not in ("outcomes", "links")}))


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
    from vigil.web.serve import serve

    serve(_app(ctx), host=host, port=port)


@click.command("backtest")
@click.option("--data", "data", required=True, type=click.Path(file_okay=False), help="Data directory.")
@click.option("--rules", "rules_path", type=click.Path(), default=None, help="Rule file or directory.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="alerts.csv or alerts.jsonl")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="A file of attack event ids (one per line, or a CSV with an event_id column).")
@click.option("--compare", "compare_path", type=click.Path(), default=None,
              help="Older rules to compare with: which alerts each rule adds or drops.")
@click.option("--chunk-events", type=click.IntRange(1_000, None), default=None,
              help="Events per time-ordered chunk (memory grows with it; default 250,000).")
@click.option("--timings", is_flag=True, help="Also print the seconds spent per phase and detector.")
@click.option("--warmup", "warmup_days", type=click.FloatRange(0, 3650), default=0, show_default=True,
              help="Days from the data's start that only teach the profiles (no alerts), as 'vigil profiles build'.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: one process; dask: partitioned by account on a Dask cluster (docs/scaling.md).")
@click.option("--scheduler", default=None, help="With --engine dask: join the Dask scheduler at this address.")
@click.option("--workers", type=click.IntRange(1, None), default=None,
              help="With --engine dask: start a local cluster of N worker processes (default: one per core).")
@click.pass_context
def backtest_cmd(ctx: click.Context, data: str, rules_path: str | None, out: str, labels: str | None,
                 compare_path: str | None, chunk_events: int | None, timings: bool, warmup_days: float,
                 engine: str, scheduler: str | None, workers: int | None) -> None:
    """Run rules over a data directory from a clean state; deliver nothing; write the alerts."""
    from vigil.backtest import CHUNK_EVENTS, terminal, write_alerts
    from vigil.backtest_dask import engine_runner
    from vigil.bootstrap import load_rule_set

    run_backtest = engine_runner(engine, scheduler=scheduler, workers=workers)
    if not Path(data).is_dir():
        raise ConfigError(f"{data}: data directory not found")
    configured = (ctx.find_root().obj or {}).get("config_path")  # --config or VIGIL_CONFIG
    tables = _settings(ctx).source.tables if configured else None  # the export's own names, if mapped
    res = run_backtest(data, rules=_with_models(ctx, load_rule_set(rules_path)), tables=tables,
                       progress=terminal(), batch_rows=chunk_events or CHUNK_EVENTS, warmup_days=warmup_days)
    write_alerts(res.alerts, out)
    click.echo(res.summary())
    if timings:
        click.echo(f"timings ({res.chunks} chunk(s)): " + ", ".join(
            f"{k} {v:.2f}s" for k, v in sorted(res.timings.items(), key=lambda kv: -kv[1])))
    try:
        from rules.report import compare, per_rule_report
    except ImportError:
        per_rule_report = None  # type: ignore[assignment]
    if per_rule_report is not None:
        click.echo(_report_text(per_rule_report, res, labels, data))
        if compare_path:
            old = run_backtest(data, rules=_with_models(ctx, load_rule_set(compare_path)), tables=tables,
                               warmup_days=warmup_days)
            click.echo(_compare_text(compare(old.alerts, res.alerts)))
    click.echo(f"wrote {len(res.alerts)} alert(s) to {out}")
    _fail_on_unusable(res.problems, res.all_quarantined, shown=True)


def _with_models(ctx: click.Context, rules: Any) -> Any:
    """The learned detector's models come from the settings (never from the rule files)."""
    if not (ctx.find_root().obj or {}).get("config_path"):
        return rules
    from vigil.models import bind_models, load_models

    return bind_models(rules, load_models(_settings(ctx)))


def _report_text(per_rule_report: Any, res: Any, labels: str | None, data: str) -> str:
    from vigil.reporting import data_days, format_rule_report, read_labels

    lab = read_labels(labels) if labels else None
    days = max(1.0, data_days(data) - getattr(res, "warmup_days", 0.0))  # alerts per day after the warm-up
    return format_rule_report(per_rule_report(res.alerts, lab, days))


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
