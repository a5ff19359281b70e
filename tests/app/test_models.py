"""No code from rule files: a model is named in the operator's settings, pinned by SHA-256 and read
with skops; `vigil rules check`, backtests and hot reload never unpickle what a rule names."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detectors.batch import Batch
from detectors.isolation import Isolation, fit_model, save_model
from rules.loader import DEFAULT_PACK
from rules.reload import RuleSetManager
from tests.app.helpers import small_dir, write_csv
from tests.detectors.test_isolation import history
from vigil.bootstrap import rule_manager
from vigil.models import load_models
from vigil.settings import load_settings

VIGIL = [sys.executable, "-m", "vigil.cli"]


class _Creates:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.target), "w"))


def evil_pack(tmp_path: Path) -> tuple[Path, Path]:
    """The default pack whose learned detector points ``model_path`` at a pickle that creates a file."""
    planted = tmp_path / "pwned"
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(_Creates(planted)))
    pack = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, pack)
    learned = pack / "learned.yaml"
    learned.write_text(learned.read_text().replace("    model: isolation ", f"    model_path: {pkl}\n    #"))
    return pack, planted


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_rules_check_and_backtest_refuse_a_model_path_and_never_unpickle_it(tmp_path: Path) -> None:
    pack, planted = evil_pack(tmp_path)
    check = run("rules", "check", str(pack), cwd=tmp_path)
    assert check.returncode == 1
    assert "detectors.isolation.model_path: model files are not named in rule files" in check.stdout
    data = small_dir(tmp_path / "data", bad_row=False)
    bt = run("backtest", "--data", str(data), "--rules", str(pack), "--out", str(tmp_path / "a.csv"), cwd=tmp_path)
    assert bt.returncode == 1 and "model files are not named in rule files" in bt.stderr
    assert "Traceback" not in check.stdout + check.stderr + bt.stdout + bt.stderr
    assert not planted.exists()


def test_hot_reload_refuses_a_model_path(tmp_path: Path) -> None:
    pack = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, pack)
    m = RuleSetManager(pack)
    (tmp_path / "evil").mkdir()
    evil, planted = evil_pack(tmp_path / "evil")
    shutil.copy(evil / "learned.yaml", pack / "learned.yaml")
    res = m.maybe_reload(datetime.now(UTC))
    assert res.status == "refused" and not planted.exists()
    assert any("model_path" in e.message for e in res.errors)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    fitted = fit_model(Batch.from_frames(history()), contamination=0.02, n_estimators=60, seed=0)
    path = tmp_path_factory.mktemp("m") / "isolation.skops"
    meta = save_model(fitted, path, fitted_at=datetime(2024, 4, 1, tzinfo=UTC))
    return path, str(meta["sha256"])


def settings_file(tmp_path: Path, path: Path, sha: str) -> Path:
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'v.db'}\nmodels:\n  isolation:\n"
                   f"    path: {path}\n    sha256: {sha}\n")
    return cfg


def test_the_settings_model_is_attached_at_start_and_after_each_reload(tmp_path: Path,
                                                                        model: tuple[Path, str]) -> None:
    path, sha = model
    models = load_models(load_settings(settings_file(tmp_path, path, sha)))
    pack = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, pack)
    m = rule_manager(str(pack), models=models)
    det = m.current.detectors["isolation"]
    assert isinstance(det, Isolation) and det.model_ is not None and det.model_.version == sha[:12]
    (pack / "learned.yaml").write_text((pack / "learned.yaml").read_text() + "\n# reviewed\n")
    assert m.maybe_reload(datetime.now(UTC)).status == "applied"
    again = m.current.detectors["isolation"]
    assert again is not det and isinstance(again, Isolation) and again.model_ is not None


def test_a_pinned_pickle_is_refused_and_only_the_learned_detector_stops(tmp_path: Path) -> None:
    planted = tmp_path / "pwned"
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(_Creates(planted)))
    cfg = settings_file(tmp_path, pkl, hashlib.sha256(pkl.read_bytes()).hexdigest())
    learned = tmp_path / "rules" / "learned.yaml"
    learned.parent.mkdir()
    learned.write_text((DEFAULT_PACK / "learned.yaml").read_text().replace("mode: shadow", "mode: live"))
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "transactions.csv", history(accounts=3, days=10)["transactions"].to_dict("records"))
    bt = run("--config", str(cfg), "backtest", "--data", str(data), "--rules", str(learned.parent),
             "--out", str(tmp_path / "a.csv"), cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    assert "skipped by isolation: model 'isolation' refused" in bt.stdout
    assert "not a skops model" in bt.stdout + bt.stderr
    assert not planted.exists()
    verify = run("--config", str(cfg), "model", "verify", cwd=tmp_path)
    assert verify.returncode == 1 and "refused" in verify.stderr and not planted.exists()


def test_model_verify_accepts_the_pinned_model(tmp_path: Path, model: tuple[Path, str]) -> None:
    path, sha = model
    out = run("--config", str(settings_file(tmp_path, path, sha)), "model", "verify", cwd=tmp_path)
    assert out.returncode == 0 and f"isolation: ok (version {sha[:12]}" in out.stdout
