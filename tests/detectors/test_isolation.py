"""The learned detector: fit, save, refuse foreign models, explain, and ``vigil model fit``."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detectors import Batch, DetectorResult
from detectors.isolation import (
    FEATURES,
    TRUSTED_TYPES,
    Isolation,
    ModelError,
    compute_features,
    fit_model,
    load_model,
    save_model,
)

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
    path = tmp_path_factory.mktemp("m") / "iso.skops"
    save_model(model, path, fitted_at=T0.to_pydatetime())
    return path, data


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_model(path: Path) -> Isolation:
    det = Isolation()
    det.attach(load_model(path, sha(path)))
    return det


def profiles_after(det: Isolation, data: dict[str, pd.DataFrame]) -> dict[str, Any]:
    res = det.scan(Batch.from_frames(data), {}, now=T0)
    return json.loads(json.dumps(res.profiles, allow_nan=False))


def test_no_model_skips_with_a_reason() -> None:
    res = Isolation().scan(Batch.from_frames(takeover()), {}, now=T0)
    assert res.findings == [] and res.profiles == {}
    assert res.skips[0].rows == 1 and "no model 'isolation' in the settings" in res.skips[0].reason
    refused = Isolation()
    refused.attach(None, "model 'isolation' refused: checksum")
    assert refused.scan(Batch.from_frames(takeover()), {}, now=T0).skips[0].reason.endswith("checksum")


def test_takeover_withdrawal_is_flagged_and_explained(fitted: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    path, data = fitted
    det = with_model(path)
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
    det = with_model(path)
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


def test_a_security_change_alone_in_a_batch_still_counts_for_the_next_batch(
    fitted: tuple[Path, dict[str, pd.DataFrame]],
) -> None:
    """Found by the conformance suite (ten batches = one): a batch holding only the password change
    must carry it in the profile, so the withdrawal in the next batch is judged as 20 minutes after it."""
    path, data = fitted
    det = with_model(path)
    prof = profiles_after(det, data)
    attack = takeover("a3")
    whole = det.scan(Batch.from_frames(attack), {"a3": prof["a3"]}, now=T0)
    first = det.scan(Batch.from_frames({"security_events": attack["security_events"]}), {"a3": prof["a3"]}, now=T0)
    carried = json.loads(json.dumps(first.profiles))
    assert carried["a3"]["c"] and carried["a3"]["f"] == prof["a3"]["f"]
    second = det.scan(Batch.from_frames({"transactions": attack["transactions"]}), carried, now=T0)
    assert [(f.finding_id, round(f.score, 9)) for f in second.findings] == [
        (f.finding_id, round(f.score, 9)) for f in whole.findings
    ]
    assert whole.findings  # the takeover is flagged at all, so the comparison is not vacuous


def _resave(path: Path, out: Path, **meta: Any) -> Path:
    """The model at ``path`` saved again with some metadata changed (a foreign model)."""
    import skops.io as sio

    obj = sio.load(path, trusted=list(TRUSTED_TYPES))
    obj["meta"] = {**obj["meta"], **meta}
    sio.dump(obj, out)
    return out


def test_refuses_another_feature_set(fitted: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    path, _ = fitted
    feats = [*FEATURES[:-1], "hour_of_day"]
    other = _resave(path, tmp_path / "old.skops", features=feats)
    with pytest.raises(
        ModelError,
        match=r"fitted on feature set 1 \(it has hour_of_day; it lacks log_hours_since_prev_withdrawal\), "
        r"but this Vigil computes feature set 1\. Refit it with `vigil model fit`\.",
    ):
        load_model(other, sha(other))


def test_refuses_a_tampered_file_an_unpinned_hash_and_a_missing_file(
    fitted: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path
) -> None:
    path, _ = fitted
    bad = tmp_path / "bad.skops"
    bad.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match=r"not the .* pinned in the settings; refusing to read it"):
        load_model(bad, sha(path))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.skops", sha(path))


class _Creates:
    """Unpickling this creates a file: what a malicious "model" would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.target), "w"))


def test_a_pickle_is_never_unpickled_even_with_its_hash_pinned(tmp_path: Path) -> None:
    planted = tmp_path / "pwned"
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(_Creates(planted)))
    with pytest.raises(ModelError, match=r"not a skops model .* never loaded"):
        load_model(evil, sha(evil))
    assert not planted.exists()


def test_a_skops_file_with_untrusted_types_is_refused_unread(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    f = tmp_path / "fn.skops"
    sio.dump({"estimator": FunctionTransformer(func=os.system), "meta": {}}, f)
    with pytest.raises(ModelError, match=r"contains types outside the trusted list: .*system"):
        load_model(f, sha(f))


def test_refuses_another_scikit_learn(fitted: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    path, _ = fitted
    other = _resave(path, tmp_path / "v.skops", sklearn="0.24.2")
    with pytest.raises(ModelError, match=r"scikit-learn 0\.24\.2"):
        load_model(other, sha(other))


def test_the_model_file_carries_version_features_and_threshold(fitted: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    path, _ = fitted
    model = load_model(path, sha(path))
    assert model.meta["features"] == list(FEATURES) and model.meta["feature_set"] == 1
    assert 0.3 < model.meta["threshold"] < 1 and len(model.meta["medians"]) == len(FEATURES)
    assert model.version == sha(path)[:12]


def test_cli_fit_writes_a_loadable_model(tmp_path: Path) -> None:
    from vigil.cli import main

    data = history(seed=3, accounts=20, days=30)
    d = tmp_path / "data"
    d.mkdir()
    data["transactions"].to_csv(d / "transactions.csv", index=False)
    with (d / "transactions.csv").open("a") as fh:
        fh.write("bad1,a1,not-a-time,withdrawal,USDT,10,0xabc\n")
    out = tmp_path / "models" / "iso.skops"
    res = CliRunner().invoke(main, ["model", "fit", "--data", str(d), "--out", str(out), "--trees", "50"])
    assert res.exit_code == 0, res.output
    assert "fitted on" in res.output and "1 row(s) quarantined" in res.output
    assert f"sha256: {sha(out)}" in res.output  # the line to pin in the settings
    assert load_model(out, sha(out)).estimator is not None


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
