"""``vigil demo``: registered through the ``vigil.commands`` entry point; the work is in :mod:`vigil_lab.demo`."""

from __future__ import annotations

import click

DEMO_DB = "sqlite:///vigil-demo.db"


@click.command("demo")
@click.option("--db", "db_url", default=None,
              help=f"Database URL (default: the top-level --db, else {DEMO_DB}; never VIGIL_DATABASE_URL, "
                   "because the demo starts from an empty database).")
@click.option("--data-dir", default="demo-data", show_default=True)
@click.option("--accounts", default=60, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--serve/--no-serve", default=True, help="Serve the confirmation page afterwards.")
@click.option("--port", default=8000, show_default=True)
@click.pass_context
def demo_cmd(ctx: click.Context, db_url: str | None, data_dir: str, accounts: int, seed: int, serve: bool, port: int
             ) -> None:
    """The embedded default end to end: demo data, scan, console delivery, confirmation page."""
    from vigil_lab.demo import run_demo

    root = ctx.find_root().obj or {}
    run_demo(db_url=db_url or root.get("db_url") or DEMO_DB, data_dir=data_dir, accounts=accounts, seed=seed,
             serve=serve, port=port, config_path=root.get("config_path"))
