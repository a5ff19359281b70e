"""The product and the lab are two distributions (issue 10 point 1): the product's wheel holds no lab
code and registers no lab command; the lab's wheel holds the lab and plugs ``demo`` and ``eval`` in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tracked(prefix: str = "") -> list[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", prefix or "."], capture_output=True,
                         check=False)
    if out.returncode != 0:
        pytest.skip("not a git checkout")  # an sdist or a copy: the wheel test needs the tracked file list
    return [p for p in out.stdout.decode().split("\0") if p]


def _wheel(tmp: Path, project: Path) -> zipfile.ZipFile:
    out = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(project)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("*.whl")
    return zipfile.ZipFile(whl)


def _copy(files: list[str], dest: Path, strip: str = "") -> None:
    for f in files:
        target = dest / f[len(strip):]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, target)


def test_the_product_wheel_holds_no_lab_and_the_lab_wheel_plugs_in_its_commands(tmp_path: Path) -> None:
    product = tmp_path / "product"
    _copy([f for f in _tracked() if not f.startswith(("lab/", "tests/", "node_modules/"))], product)
    whl = _wheel(tmp_path / "p", product)
    names = whl.namelist()
    assert any(n.startswith("vigil/cli/") for n in names) and any(n.startswith("detectors/") for n in names)
    assert not [n for n in names if n.startswith("vigil_lab/")]
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Requires-Dist: vigil-lab==0.1.0; extra == \"lab\"" in whl.read(meta).decode()
    eps = [n for n in names if n.endswith("entry_points.txt")]
    assert eps and "vigil_lab" not in whl.read(eps[0]).decode()

    lab = tmp_path / "lab"
    _copy(_tracked("lab/"), lab, strip="lab/")
    lwhl = _wheel(tmp_path / "l", lab)
    lnames = lwhl.namelist()
    assert "vigil_lab/eval_cmd.py" in lnames and not [n for n in lnames if n.startswith("vigil/")]
    leps = lwhl.read(next(n for n in lnames if n.endswith("entry_points.txt"))).decode()
    assert "[vigil.commands]" in leps and "eval = vigil_lab.eval_cmd:eval_command" in leps
