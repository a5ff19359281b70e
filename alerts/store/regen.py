"""Regenerate the initial migration from the models (pre-release: one migration).

    python -m alerts.store.regen

Once a release has shipped, new revisions are added with ``alembic revision --autogenerate``
instead, and this tool is retired.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from alerts.store.db import MIGRATIONS, alembic_config


def main() -> None:
    versions = MIGRATIONS / "versions"
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'empty.db'}"
        cfg = alembic_config(url)
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    for f in versions.glob("0001_*.py"):
        f.rename(versions / "0001_initial.py")
    print("wrote", versions / "0001_initial.py")


if __name__ == "__main__":
    main()
