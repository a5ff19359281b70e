"""``vigil profiles build``: warm start -- learn the detectors' profiles from past records, alerting nobody."""

from __future__ import annotations

from pathlib import Path

import click

from vigil.errors import ConfigError


@click.group("profiles")
def profiles_group() -> None:
    """The detectors' per-account profiles (what each account usually does)."""


@profiles_group.command("build")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(file_okay=False),
    help="History directory: NAME.csv / NAME.parquet per table, as for 'vigil backtest' and 'vigil import'.",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(),
    default=None,
    help="Rule file or directory whose detectors learn (default: the settings' rules_path, else the default pack).",
)
@click.option(
    "--chunk-events",
    type=click.IntRange(1_000, None),
    default=250_000,
    show_default=True,
    help="Events per time-ordered chunk (one transaction each).",
)
@click.pass_context
def build_cmd(ctx: click.Context, data: str, rules_path: str | None, chunk_events: int) -> None:
    """Learn profiles from past records without alerting and store them in the database.

    The first withdrawal to an address the account used in the history, and the first login from a
    country it used there, are then familiar.  Feed history that ends before the events the daemon
    will scan: an event learned here and scanned again later would count twice.
    """
    from datetime import UTC, datetime

    from alerts.store.db import make_engine, session_factory, upgrade
    from vigil.backtest import LazyResolver
    from vigil.bootstrap import geo_resolver, load_rule_set
    from vigil.cli.core import _fail_on_unusable, _redact, _settings, _with_models
    from vigil.profiles import SqlProfiles
    from vigil.warmup import learn_directory

    if not Path(data).is_dir():
        raise ConfigError(f"{data}: data directory not found")
    settings = _settings(ctx)  # the database: the global --db, VIGIL_DATABASE_URL or the settings
    configured = (ctx.find_root().obj or {}).get("config_path")
    rules = _with_models(ctx, load_rule_set(rules_path or settings.rules_path))
    geo = (
        LazyResolver(lambda: geo_resolver(settings.geo.mmdb_city, settings.geo.mmdb_asn))
        if settings.geo.enabled
        else None
    )  # opened on the first IP-only login
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            store = SqlProfiles(session)
            report = learn_directory(
                data,
                rules,
                store,
                now=datetime.now(UTC),
                geo=geo,
                tables=settings.source.tables if configured else None,
                chunk_events=chunk_events,
                commit=session.commit,
            )
            session.commit()
    finally:
        engine.dispose()
    click.echo(report.summary())
    click.echo(
        f"profiles stored in {_redact(settings.database_url)}: {sum(report.profiles.values())} "
        f"write(s) for {len(report.accounts)} account(s); nothing was alerted"
    )
    bad = sorted(t for t, n in report.rows.items() if n and sum(q.table == t for q in report.quarantined) >= n)
    _fail_on_unusable(report.problems, bad, shown=True)


COMMANDS = [profiles_group]
