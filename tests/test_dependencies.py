"""Dependencies: minimums past known advisories, a hashed lock file, and an offline-tolerant audit."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "deploy.txt"
# the first versions past the advisories named in issue 9 (CVE ids in pyproject.toml)
FLOORS = {"python-multipart": "0.0.22", "starlette": "0.49.1", "h11": "0.16.0", "jinja2": "3.1.6"}


def _project() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in deps}


def _locked() -> dict[str, str]:
    text = LOCK.read_text().replace("\\\n", " ")
    return {canonicalize_name(m.group(1)): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}


@pytest.mark.parametrize(("name", "floor"), sorted(FLOORS.items()))
def test_minimum_versions_are_past_the_advisories(name: str, floor: str) -> None:
    req = _project()[name]
    rel = Version(floor).release
    below = (*rel[:-1], rel[-1] - 1) if rel[-1] else None
    assert req.specifier.contains(floor)
    if below is not None:
        assert not req.specifier.contains(".".join(map(str, below))), f"{name} still admits a vulnerable version"
    assert Version(_locked()[name]) >= Version(floor)


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    locked = _locked()
    missing = [n for n in _project() if n not in locked]
    assert not missing, f"not in {LOCK.name}: {missing}"
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", LOCK.read_text())
    pinned = [b for b in blocks if re.match(r"[A-Za-z0-9_.\-]+==", b)]
    assert pinned and all("--hash=sha256:" in b for b in pinned)
    for name, req in _project().items():
        assert req.specifier.contains(locked[name], prereleases=True), name


def test_audit_without_network_warns_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "",
           "PIP_AUDIT_TIMEOUT": "5"}
    run = subprocess.run(["bash", "scripts/audit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cannot be reached" in run.stderr and "NOT audited" in run.stderr
    strict = subprocess.run(["bash", "scripts/audit"], cwd=ROOT, env={**env, "VIGIL_AUDIT_STRICT": "1"},
                            capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1
