"""Detector outputs reduced to plain, comparable JSON: findings, skips and profiles.

Used two ways:

* ``tests/detectors/test_detector_golden.py`` compares the detectors with outputs stored from an earlier
  implementation (``tests/detectors/golden/*.json.gz``), so a rewrite for speed cannot change an
  answer silently;
* ``python -m tests.detectors.golden --compare REF`` runs the detectors of git revision ``REF``
  (extracted to a temporary directory, imported in a subprocess) and of the work tree on the same
  generated data and prints every difference, detector by detector.

Each data set is scanned once as one batch and once in four batches carrying JSON round-tripped
profiles, so profile reading and writing are compared as well as the findings.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
SPLITS = (0.25, 0.5, 0.75)
# non-default settings that reach code the defaults do not: name -> (detector, parameters)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "new_location:city": ("new_location", {"levels": ["country", "city"], "min_history_days": 2.0}),
    "new_device:days": ("new_device", {"min_history_days": 3.0, "history_logins": 0}),
    "login_risk:strict": ("login_risk", {"min_log10_score": 1.0, "max_values": 10, "trust_after_uses": 0}),
    "impossible_travel:slow": ("impossible_travel", {"max_speed_kmh": 300.0, "skip_anonymous": False}),
}


def datasets() -> dict[str, dict[str, pd.DataFrame]]:
    """Seeded data sets: the conformance generator (planted incidents) and the evaluation generator
    (realistic legitimate behaviour, three attacker models)."""
    from tests.detectors.conformance_data import make_data
    from vigil_lab.evalgen import EvalSpec, generate

    out = {f"conformance-{s}": make_data(s, n_accounts=16) for s in (1, 2, 3)}
    spec = EvalSpec(seed=5, accounts=120, days=20, warmup_days=10, attacks_per_model=6)
    out["eval-5"] = generate(spec).frames
    return out


def _now(frames: Mapping[str, pd.DataFrame]) -> Any:
    ts = max(pd.to_datetime(df["ts"], utc=True).max() for n, df in frames.items() if "ts" in df and len(df))
    return (ts + timedelta(days=1)).to_pydatetime()


def _split(frames: Mapping[str, pd.DataFrame]) -> list[dict[str, pd.DataFrame]]:
    stamps = np.concatenate(
        [
            pd.to_datetime(df["ts"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
            for df in frames.values()
            if "ts" in df
        ]
    )
    cuts = [None, *np.quantile(stamps, SPLITS).astype(np.int64).tolist(), None]
    parts = []
    for lo, hi in itertools.pairwise(cuts):
        part = {}
        for n, df in frames.items():
            if "ts" not in df:
                part[n] = df
                continue
            ns = pd.to_datetime(df["ts"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
            keep = np.ones(len(ns), dtype=bool)
            if lo is not None:
                keep &= ns >= lo
            if hi is not None:
                keep &= ns < hi
            part[n] = df[keep]
        parts.append(part)
    return parts


def _findings(res: Any) -> list[list[Any]]:
    return sorted(
        [
            f.finding_id,
            f.detector,
            f.account_id,
            f.kind,
            f.ts.isoformat(),
            list(f.event_ids),
            round(float(f.score), 6),
            # the learned model's version is the hash of its saved file, which differs between saves
            json.loads(json.dumps({k: v for k, v in f.evidence.items() if k != "model_version"}, sort_keys=True)),
        ]
        for f in res.findings
    )


def _skips(res: Any) -> list[list[Any]]:
    return sorted([s.reason, s.rows] for s in res.skips)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, allow_nan=False).encode()).hexdigest()[:16]


def _model(frames: Mapping[str, pd.DataFrame], tmp: Path) -> Any:
    """A fitted model, saved and loaded back the way the operator's settings pin it (skops + SHA-256)."""
    from detectors import Batch
    from detectors.isolation import fit_model, load_model, save_model

    model = fit_model(Batch.from_frames(frames), contamination=0.03, n_estimators=50, seed=0, min_rows=10)
    path = tmp / "isolation.skops"
    save_model(model, path, fitted_at=_now(frames))
    return load_model(path, hashlib.sha256(path.read_bytes()).hexdigest())


def run_all(names: list[str] | None = None, sets: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{dataset: {detector: {"one": ..., "split": ...}}}`` for every registered detector."""
    from detectors import DETECTORS, Batch

    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ds, frames in datasets().items():
            if sets is not None and ds not in sets:
                continue
            model = _model(frames, Path(tmp)) if (names is None or "isolation" in names) else None
            now = _now(frames)
            out[ds] = {}
            runs: dict[str, Any] = {name: (cls, {}) for name, cls in DETECTORS.items()}
            runs.update({v: (DETECTORS[d], p) for v, (d, p) in VARIANTS.items()})
            for name, (cls, params) in sorted(runs.items()):
                if names is not None and name.split(":")[0] not in names:
                    continue
                det = cls(**params)
                if name == "isolation" and model is not None:
                    det.attach(model)
                one = det.scan(Batch.from_frames(frames), {}, now=now)
                profiles: dict[str, Any] = {}
                found: list[list[Any]] = []
                skips: list[list[Any]] = []
                for part in _split(frames):
                    batch = Batch.from_frames(part)
                    keys = set(batch.accounts()) | set(det.profile_keys(batch))
                    res = det.scan(batch, {k: v for k, v in profiles.items() if k in keys}, now=now)
                    profiles.update(json.loads(json.dumps(res.profiles, allow_nan=False)))
                    found += _findings(res)
                    skips += _skips(res)
                out[ds][name] = {
                    "one": {
                        "findings": _findings(one),
                        "skips": _skips(one),
                        "profiles": json.loads(json.dumps(one.profiles, allow_nan=False, sort_keys=True)),
                    },
                    "split": {"findings": sorted(found), "skips": sorted(skips), "profiles": _digest(profiles)},
                }
    return out


def diff(a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 5) -> list[str]:
    """Human-readable differences between two ``run_all`` outputs (``a`` expected, ``b`` actual)."""
    lines: list[str] = []
    for ds in sorted(set(a) | set(b)):
        for det in sorted(set(a.get(ds, {})) | set(b.get(ds, {}))):
            x, y = a.get(ds, {}).get(det), b.get(ds, {}).get(det)
            if x == y:
                continue
            if x is None or y is None:
                lines.append(f"{ds}/{det}: only in {'actual' if x is None else 'expected'}")
                continue
            for mode in ("one", "split"):
                for part in ("findings", "skips", "profiles"):
                    p, q = x[mode][part], y[mode][part]
                    if p == q:
                        continue
                    if part == "findings":
                        pi, qi = {f[0]: f for f in p}, {f[0]: f for f in q}
                        gone = [pi[k] for k in pi if k not in qi]
                        new = [qi[k] for k in qi if k not in pi]
                        changed = [(pi[k], qi[k]) for k in pi if k in qi and pi[k] != qi[k]]
                        lines.append(
                            f"{ds}/{det}/{mode}: findings {len(p)} -> {len(q)}: {len(gone)} gone, "
                            f"{len(new)} new, {len(changed)} changed"
                        )
                        lines += [f"    gone {g}" for g in gone[:limit]]
                        lines += [f"    new  {g}" for g in new[:limit]]
                        lines += [f"    was  {c[0]}\n    now  {c[1]}" for c in changed[:limit]]
                    elif part == "profiles" and isinstance(p, dict):
                        keys = sorted(k for k in set(p) | set(q) if p.get(k) != q.get(k))
                        lines.append(f"{ds}/{det}/{mode}: profiles differ for {len(keys)} key(s)")
                        for k in keys[:limit]:
                            lines.append(f"    {k}: was {json.dumps(p.get(k))[:600]}")
                            lines.append(f"    {k}: now {json.dumps(q.get(k))[:600]}")
                    else:
                        lines.append(f"{ds}/{det}/{mode}: {part} differ: was {p} now {q}"[:2000])
    return lines


def load_golden() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(GOLDEN.glob("*.json.gz")):
        out[path.name[: -len(".json.gz")]] = json.loads(gzip.decompress(path.read_bytes()))
    return out


def write_golden(results: Mapping[str, Any]) -> None:
    GOLDEN.mkdir(exist_ok=True)
    for ds, value in results.items():
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        (GOLDEN / f"{ds}.json.gz").write_bytes(gzip.compress(text.encode(), mtime=0))


def _at_revision(ref: str, names: list[str] | None, write: bool = False) -> dict[str, Any]:
    """Run ``run_all`` with the ``detectors`` package of git revision ``ref``."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "detectors"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        out = Path(tmp) / "out.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(ROOT)])}
        cmd = [sys.executable, "-m", "tests.detectors.golden", "--dump", str(out)]
        if names:
            cmd += ["--only", ",".join(names)]
        subprocess.run(cmd, env=env, cwd=tmp, check=True)
        return dict(json.loads(out.read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", metavar="REF", help="compare the work tree with git revision REF")
    ap.add_argument("--write", action="store_true", help="(re)write the stored outputs (of --compare REF if given)")
    ap.add_argument("--only", help="comma-separated detector names")
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = args.only.split(",") if args.only else None
    if args.dump:
        import detectors

        print(f"detectors from {Path(detectors.__file__).parent}", file=sys.stderr)
        Path(args.dump).write_text(json.dumps(run_all(names)))
        return
    if args.write:
        write_golden(_at_revision(args.compare, names) if args.compare else run_all(names))
        return
    mine = json.loads(json.dumps(run_all(names)))
    theirs = _at_revision(args.compare, names) if args.compare else load_golden()
    if names:
        theirs = {ds: {k: v for k, v in d.items() if k.split(":")[0] in names} for ds, d in theirs.items()}
    lines = diff(theirs, mine)
    print("\n".join(lines) if lines else "identical")
    raise SystemExit(1 if lines else 0)


if __name__ == "__main__":
    main()
