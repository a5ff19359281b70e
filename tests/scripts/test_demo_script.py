"""``scripts/demo`` says what it does in a few lines, not pip's log -- and shows that log when the
install fails.  Real venvs and a real pip: the failure in a throw-away copy, the success in this
checkout (its .venv, installed editable: reinstalling changes nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIP_NOISE = ("Requirement already satisfied", "Successfully installed", "Collecting", "Obtaining",
             "Installing build dependencies", "WARNING")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["PYTHON"] = sys.executable  # a Python >= 3.11 that can make a venv
    return env


def test_a_failed_install_shows_the_end_of_pips_log(tmp_path: Path) -> None:
    repo = tmp_path / "vigil"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "demo", repo / "scripts" / "demo")
    (repo / "lab").mkdir()
    shutil.copy(REPO / "lab" / "pyproject.toml", repo / "lab" / "pyproject.toml")
    (repo / "pyproject.toml").write_text("[project\nname = 'broken'\n")  # not TOML: pip stops at once
    p = subprocess.run(["bash", "scripts/demo", "--no-serve"], cwd=repo, env=_env(), capture_output=True,
                       text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout + p.stderr
    said = p.stdout.splitlines()
    assert said[0].startswith("scripts/demo: creating .venv with Python 3.")
    assert said[1] == ("scripts/demo: installing Vigil and its lab into .venv (a few minutes the first time; "
                       "pip's log: .venv/install.log)")
    assert len(said) == 2
    assert p.stderr.startswith("scripts/demo: the install failed. The end of pip's log (.venv/install.log):")
    log = (repo / ".venv" / "install.log").read_text()
    assert "at the end of a table declaration" in p.stderr  # pip's own words about the broken file
    last = [x for x in log.splitlines() if x.strip()][-1]
    assert f"  | {last}" in p.stderr  # the log's own last line is shown
    assert not (repo / ".venv" / ".vigil-demo.sha256").exists()


@pytest.mark.slow
def test_the_demo_script_says_what_it_does_in_a_few_lines(tmp_path: Path) -> None:
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in this checkout (scripts/test and scripts/demo make one)")
    stamp = REPO / ".venv" / ".vigil-demo.sha256"
    args = ["--no-serve", "--accounts", "30", "--db", f"sqlite:///{tmp_path / 'demo.db'}", "--data-dir",
            str(tmp_path / "demo-data")]
    for round_ in ("install", "up to date"):
        if round_ == "install":
            stamp.unlink(missing_ok=True)
        p = subprocess.run(["bash", "scripts/demo", *args], cwd=REPO, env=_env(), capture_output=True,
                           text=True, timeout=1200, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        before = p.stdout[:p.stdout.index("1. generated demo data")].splitlines()
        assert all(line.startswith("scripts/demo: ") for line in before), before
        assert not any(noise in p.stdout + p.stderr for noise in PIP_NOISE)
        if round_ == "install":
            assert len(before) == 3 and before[0].startswith("scripts/demo: installing Vigil")
            assert before[1].startswith("scripts/demo: installed in ") and stamp.exists()
        else:
            assert before[0] == "scripts/demo: Vigil is installed in .venv (pyproject.toml unchanged since)"
            assert len(before) == 2
        assert before[-1] == f"scripts/demo: running: .venv/bin/vigil demo {' '.join(args)}"
        assert "6. look at the demo's accounts and tickets" in p.stdout
        assert ".venv/bin/vigil --db sqlite:///" in p.stdout  # the printed commands name the venv's vigil
