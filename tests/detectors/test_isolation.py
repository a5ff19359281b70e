"""The learned detector: fit, save, refuse foreign models, explain, and ``vigil model fit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detectors import Batch, DetectorResult, ParameterError
from detectors.isolation import FEATURES, Isolation, compute_features, fit_model, load_model, save_model

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def history(seed: int = 0, accounts: int = 40, days: int = 40) -> dict[str, pd.DataFrame]:
    """Ordinary accounts: a deposit a week, a modest withdrawal every few days to two addresses."""
    rng = np.random.default_rng(seed)
    tx: list[dict[str, Any]] = []
    n = 0
    for a in range(accounts):
        for d in range(days):
            ts = T0 + pd.Timedelta(days=d, hours=float(rng.uniform(8, 20)))
            if d % 7 == 0:
                n += 1
                tx.append(
                    {
                        "event_id": f"t{n}",
                        "account_id": f"a{a}",
                        "ts": ts,
                        "kind": "deposit",
                        "asset": "USDT",
                        "amount": float(rng.uniform(2_000, 5_000)),
                        "address": None,
                    }
                )
            if d % 3 == 1:
                n += 1
                tx.append(
                    {
                        "event_id": f"t{n}",
                        "account_id": f"a{a}",
                        "ts": ts,
                        "kind": "withdrawal",
                        "asset": "USDT",
                        "amount": float(rng.uniform(100, 400)),
                        "address": f"0x{a:04x}{int(rng.random() < 0.2)}",
                    }
                )
    return {
        "transactions": pd.DataFrame(tx),
        "security_events": pd.DataFrame(columns=["event_id", "account_id", "ts", "kind"]),
    }


def takeover(acct: str = "a3") -> dict[str, pd.DataFrame]:
    t = T0 + pd.Timedelta(days=41)
    tx = pd.DataFrame(
        [
            {
                "event_id": "x1",
                "account_id": acct,
                "ts": t + pd.Timedelta(minutes=20),
                "kind": "withdrawal",
                "asset": "USDT",
                "amount": 9_000.0,
                "address": "0xthief",
            }
        ]
    )
    sec = pd.DataFrame([{"event_id": "s1", "account_id": acct, "ts": t, "kind": "password_change"}])
    return {"transactions": tx, "security_events": sec}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    data = history()
    model = fit_model(Batch.from_frames(data), contamination=0.01, n_estimators=100, seed=0)
    path = tmp_path_factory.mktemp("m") / "iso.joblib"
    save_model(model, path, fitted_at=T0.to_pydatetime())
    return path, data


def profiles_after(det: Isolation, data: dict[str, pd.DataFrame]) -> dict[str, Any]:
    res = det.scan(Batch.from_frames(data), {}, now=T0)
    return json.loads(json.dumps(res.profiles, allow_nan=False))


def test_no_model_skips_with_a_reason() -> None:
    res = Isolation().scan(Batch.from_frames(takeover()), {}, now=T0)
    assert res.findings == [] and res.profiles == {}
    assert res.skips[0].rows == 1 and "no model configured" in res.skips[0].reason


def test_takeover_withdrawal_is_flagged_and_explained(fitted: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    path, data = fitted
    det = Isolation(model_path=str(path))
    prof = profiles_after(det, data)
    res = det.scan(Batch.from_frames(takeover()), {"a3": prof["a3"]}, now=T0)
    [f] = res.findings
    assert f.kind == "anomaly" and f.event_ids == ("x1",) and f.score >= f.evidence["threshold"]
    named = [d["feature"] for d in f.evidence["top_features"]]
    assert set(named) <= set(FEATURES) and len(named) >= 1
    assert {"log_amount_usd", "new_address", "log_hours_since_change"} & set(named)
    assert f.evidence["features"]["new_address"] == 1.0
    assert f.evidence["features"]["log_hours_since_change"] == pytest.approx(np.log1p(20 / 60), abs=1e-4)
    assert "typical" in f.evidence["explanation"]
    assert all(d["contribution"] > 0 for d in f.evidence["top_features"])


def test_ordinary_withdrawal_is_not_flagged(fitted: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    path, data = fitted
    det = Isolation(model_path=str(path))
    prof = profiles_after(det, data)
    usual = pd.DataFrame(
        [
            {
                "event_id": "u1",
                "account_id": "a5",
                "ts": T0 + pd.Timedelta(days=41, hours=12),
                "kind": "withdrawal",
                "asset": "USDT",
                "amount": 250.0,
                "address": "0x00050",
            }
        ]
    )
    res = det.scan(Batch.from_frames({"transactions": usual}), {"a5": prof["a5"]}, now=T0)
    assert res.findings == []


def test_features_are_relative_to_the_account(fitted: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    _, data = fitted
    feats = compute_features(Batch.from_frames(data), {}, DetectorResult())
    assert feats is not None and feats.x.shape[1] == len(FEATURES)
    assert np.isfinite(feats.x).all()
    col = {f: i for i, f in enumerate(FEATURES)}
    assert set(np.unique(feats.x[:, col["new_address"]])) <= {0.0, 1.0}


def test_refuses_another_feature_set(fitted: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    path, _ = fitted
    other = tmp_path / "old.joblib"
    other.write_bytes(path.read_bytes())
    meta = json.loads(Path(f"{path}.json").read_text())
    meta["features"] = [*meta["features"][:-1], "hour_of_day"]
    Path(f"{other}.json").write_text(json.dumps(meta))
    with pytest.raises(
        ParameterError,
        match=r"fitted on feature set 1 \(it has hour_of_day; it lacks log_hours_since_prev_withdrawal\), "
        r"but this Vigil computes feature set 1\. Refit it with `vigil model fit`\.",
    ):
        Isolation(model_path=str(other))


def test_refuses_a_tampered_file_and_a_missing_sidecar(
    fitted: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path
) -> None:
    path, _ = fitted
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(path.read_bytes() + b"\0")
    Path(f"{bad}.json").write_text(Path(f"{path}.json").read_text())
    with pytest.raises(ParameterError, match="does not match the checksum"):
        load_model(bad)
    lone = tmp_path / "lone.joblib"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(ParameterError, match=r"has no sidecar lone\.joblib\.json"):
        load_model(lone)
    with pytest.raises(ParameterError, match="does not exist"):
        load_model(tmp_path / "nope.joblib")


def test_refuses_another_scikit_learn(fitted: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    path, _ = fitted
    other = tmp_path / "v.joblib"
    other.write_bytes(path.read_bytes())
    meta = json.loads(Path(f"{path}.json").read_text())
    meta["sklearn"] = "0.24.2"
    Path(f"{other}.json").write_text(json.dumps(meta))
    with pytest.raises(ParameterError, match=r"scikit-learn 0\.24\.2"):
        load_model(other)


def test_sidecar_records_version_features_and_threshold(fitted: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    path, _ = fitted
    meta = json.loads(Path(f"{path}.json").read_text())
    assert meta["features"] == list(FEATURES) and meta["feature_set"] == 1
    assert 0.3 < meta["threshold"] < 1 and len(meta["medians"]) == len(FEATURES)
    assert load_model(path).version == meta["sha256"][:12]


def test_cli_fit_writes_a_loadable_model(tmp_path: Path) -> None:
    from vigil.cli import main

    data = history(seed=3, accounts=20, days=30)
    d = tmp_path / "data"
    d.mkdir()
    data["transactions"].to_csv(d / "transactions.csv", index=False)
    with (d / "transactions.csv").open("a") as fh:
        fh.write("bad1,a1,not-a-time,withdrawal,USDT,10,0xabc\n")
    out = tmp_path / "models" / "iso.joblib"
    res = CliRunner().invoke(main, ["model", "fit", "--data", str(d), "--out", str(out), "--trees", "50"])
    assert res.exit_code == 0, res.output
    assert "fitted on" in res.output and "1 row(s) quarantined" in res.output
    assert Isolation(model_path=str(out)).model_ is not None


def test_cli_fit_errors_are_one_line(tmp_path: Path) -> None:
    from vigil.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["model", "fit", "--data", str(empty), "--out", str(tmp_path / "m")])
    assert res.exit_code == 1 and "no transactions.csv or transactions.parquet" in res.output
    assert "Traceback" not in res.output
    few = tmp_path / "few"
    few.mkdir()
    history(accounts=1, days=10)["transactions"].to_csv(few / "transactions.csv", index=False)
    res = CliRunner().invoke(main, ["model", "fit", "--data", str(few), "--out", str(tmp_path / "m")])
    assert res.exit_code == 1 and "at least 50 are needed" in res.output
    res = CliRunner().invoke(main, ["model", "fit", "--data", str(tmp_path / "missing"), "--out", "x"])
    assert res.exit_code != 0 and "Traceback" not in res.output
