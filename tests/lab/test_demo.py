"""``vigil demo`` (a lab command, registered through the ``vigil.commands`` entry points)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from vigil.cli import main


def test_demo_runs_the_whole_loop_without_serving(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "--no-serve", "--accounts", "30", "--db",
                                  f"sqlite:///{tmp_path / 'demo.db'}"])
    assert r.exit_code == 0, r.output
    assert "planted incidents" in r.output
    assert "alert(s)" in r.output
    assert "confirmation links" in r.output and "/c/" in r.output
    assert "Was this you?" in r.output or "本人" in r.output  # the console delivered messages
