"""``vigil model fit`` / ``vigil model verify``: the isolation-forest detector's model.

The data directory is read and validated exactly as a scan reads it (``vigil.sources.FileSource``
and ``vigil.ingest.validate``), so a bad row is quarantined and counted, never a traceback.  The
model is written to ``--out`` as a skops file, and its SHA-256 is printed: the operator pins it
in the settings, where the detector finds it by name::

    models:
      isolation:
        path: models/isolation.skops
        sha256: 3f1c…

``vigil model verify`` reads every model the settings name the way the engine will, and exits 1
if any is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from vigil.errors import VigilError


@click.group("model")
def model_group() -> None:
    """Learned-detector models."""


@model_group.command("fit")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Data directory with transactions.csv/.parquet (and security_events, accounts).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the model (a skops file, e.g. models/isolation.skops).",
)
@click.option(
    "--contamination",
    type=click.FloatRange(0.0001, 0.5),
    default=0.01,
    show_default=True,
    help="Expected share of anomalous withdrawals: sets the reporting threshold.",
)
@click.option("--trees", "n_estimators", type=click.IntRange(10, 5000), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def fit_cmd(data_dir: str, out_path: str, contamination: float, n_estimators: int, seed: int) -> None:
    """Fit the isolation forest on the withdrawals in DATA and write it to OUT."""
    from detectors.batch import Batch
    from detectors.isolation import FEATURES, fit_model, save_model
    from vigil.ingest import validate
    from vigil.sources import FileSource

    now = datetime.now(UTC)
    src = FileSource(data_dir)
    if src.file_for("transactions") is None:
        raise VigilError(f"{data_dir}: no transactions.csv or transactions.parquet: nothing to fit on")
    frames, absent, bad = {}, {}, 0
    for table in ("transactions", "security_events"):
        if src.file_for(table) is None:
            continue
        read = src.read(table, {}, 2**62, now)
        good, quarantined = validate(table, read.raw)
        bad += len(quarantined)
        for q in quarantined[:5]:
            click.echo(f"quarantined {q.ref}: {q.reason}", err=True)
        frames[table] = good
        absent[table] = read.absent
    if "address" in absent.get("transactions", frozenset()):
        raise VigilError(
            f"{src.file_for('transactions')}: column 'address' is needed for the feature new_address"
        )
    batch = Batch(frames, absent)
    try:
        model = fit_model(batch, contamination=contamination, n_estimators=n_estimators, seed=seed)
    except ValueError as e:
        raise VigilError(f"{data_dir}: {e}") from None
    meta = save_model(model, Path(out_path), fitted_at=now)
    click.echo(
        f"fitted on {meta['n_samples']} withdrawals ({meta['data_from']} .. {meta['data_to']}), "
        f"{bad} row(s) quarantined"
    )
    click.echo(f"features: {', '.join(FEATURES)}")
    click.echo(f"threshold (anomaly score at contamination {contamination:g}): {meta['threshold']:.4f}")
    click.echo(f"wrote {out_path} (version {meta['sha256'][:12]}); pin it in the settings:")
    click.echo(f"models:\n  isolation:\n    path: {out_path}\n    sha256: {meta['sha256']}")


@model_group.command("verify")
@click.pass_context
def verify_cmd(ctx: click.Context) -> None:
    """Check every model in the settings (hash, format, feature set) as the engine will read it."""
    from vigil.models import load_models
    from vigil.settings import load_settings

    settings = load_settings(ctx.find_root().obj.get("config_path"))
    models = load_models(settings)
    for name, model in sorted(models.loaded.items()):
        click.echo(f"{name}: ok (version {model.version}, fitted {model.meta.get('fitted_at', '?')})")
    for reason in models.refused.values():
        click.echo(reason, err=True)
    if not settings.models:
        click.echo("no models in the settings (models: {name: {path, sha256}})")
    if models.refused:
        raise VigilError(f"{len(models.refused)} model(s) refused")


COMMANDS = [model_group]
