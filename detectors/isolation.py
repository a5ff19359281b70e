"""Learned: an IsolationForest (scikit-learn) over per-withdrawal features.

Rules catch what staff can name; the forest catches withdrawals that are unusual in a way nobody
wrote down (a mid-sized amount to a new address an hour after a security change, by an account
that withdraws monthly).  Each outflow gets the features in :data:`FEATURES` -- all relative to
the account's own history, so a finding never depends on other accounts or on the wall clock --
and is reported when its anomaly score reaches the threshold fitted with the model.

``vigil model fit --data DIR --out PATH`` fits the forest on history and writes ``PATH``: a skops
archive holding the estimator and its metadata (the feature list, the feature-set version, the
scikit-learn version, the fitted threshold, the training medians), and prints its SHA-256.
Models are the operator's, never a rule author's: the settings name each one and pin its hash
(``models: {isolation: {path: ..., sha256: ...}}``) and a rule file can only choose a name
(``detectors: {isolation: {model: isolation}}``).  :func:`load_model` hashes the bytes before
anything parses them, reads them with skops and an explicit trusted-types list (no pickle, no
joblib: loading cannot run code), and refuses a model fitted on another feature set or by
another scikit-learn.  A refused or missing model makes the detector skip with the reason
counted; `vigil rules check`, backtests and hot reload never read a model file a rule names.

Each finding names the features behind its score: every feature in turn is set to its training
median and the drop in anomaly score is that feature's contribution (occlusion).

Profile (bounded): ``{"v": 1, "f": flows, "a": {address: last_used}, "c": last_change}`` --
the last 50 outflows within 60 days and the last 50 inflows within 30 days, at most 500 addresses
of the last 365 days, and the latest security change: at most ~45 KB, typically ~2 KB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.draining import IN_KINDS
from detectors.isolation_model import (
    FEATURE_SET,
    FEATURES,
    MODEL_FORMAT,
    TRUSTED_TYPES,
    Model,
    ModelError,
    load_model,
    save_model,
)
from detectors.large_withdrawal import OUT_KINDS, priced
from detectors.new_address import normalise_addresses, previous_use, remember
from detectors.sequence import (
    NS_PER_DAY,
    NS_PER_HOUR,
    PROFILE_VERSION,
    build_seq,
    iso_at,
    iso_to_ns,
    keep_recent,
    ns_to_iso,
    per_account,
    records,
    state_of,
    to_cents,
    to_ns,
    ts_of,
    window_sums,
)

__all__ = [
    "FEATURES", "FEATURE_SET", "MODEL_FORMAT", "TRUSTED_TYPES", "Isolation", "Model", "ModelError", "compute_features",
    "fit_model", "load_model", "save_model",
]
# how a feature reads for people: (label, inverse transform to the raw value)
_READABLE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "log_amount_usd": ("amount USD", np.expm1),
    "log_ratio_to_mean": ("x the account's mean withdrawal", np.exp),
    "log_prior_withdrawals": ("withdrawals in 60 days", np.expm1),
    "log_outflows_24h": ("withdrawals in 24 h", np.expm1),
    "share_of_deposits_24h": ("share of 30-day deposits out in 24 h", lambda x: x),
    "new_address": ("new address", lambda x: x),
    "log_hours_since_change": ("hours since a security change", np.expm1),
    "log_hours_since_prev_withdrawal": ("hours since the previous withdrawal", np.expm1),
}
CAP_HOURS = 720.0
OUT_DAYS, IN_DAYS, ADDRESS_DAYS, MAX_FLOWS, MAX_ADDRESSES = 60, 30, 365, 50, 500


@dataclass
class Features:
    """Feature rows of the batch's outflows (``rows``: index labels in the batch frame)."""

    x: np.ndarray
    rows: np.ndarray
    account: np.ndarray
    t: np.ndarray
    eid: np.ndarray
    profiles: dict[str, dict[str, Any]]


def compute_features(
    batch: Batch, profiles: Mapping[str, Mapping[str, Any]], result: DetectorResult, name: str = "isolation"
) -> Features | None:
    """Features of every outflow in the batch plus the profiles that continue them."""
    df = batch.get("transactions")
    if df is None:
        return None
    flows = df[df["kind"].isin((*OUT_KINDS, *IN_KINDS))]
    if flows.empty:
        return None
    if not batch.has_column("transactions", "address"):
        n_out = int(flows["kind"].isin(OUT_KINDS).sum())
        result.skips.append(Skip(name, "column 'address' absent: feature new_address unavailable", n_out))
        return None
    flows = priced(flows, batch, "transactions", name, result)
    if flows.empty:
        return None
    accounts = flows["account_id"].astype(str).unique()
    states = {a: state_of(profiles, a) for a in accounts}
    hist = ((a, it[0], it[1], (int(it[2]), int(it[3]))) for a in accounts for it in states[a].get("f", []))
    out = flows["kind"].isin(OUT_KINDS).to_numpy()
    seq = build_seq(
        flows,
        {"out": out.astype(np.int64), "cents": to_cents(flows["_usd"].to_numpy())},
        hist,
        ("out", "cents"),
    )
    is_out = seq.cols["out"] == 1
    cents = seq.cols["cents"]
    prior = window_sums(seq, is_out, cents, OUT_DAYS * NS_PER_DAY, MAX_FLOWS, inclusive=False)
    day = window_sums(seq, is_out, cents, NS_PER_DAY, MAX_FLOWS, inclusive=True)
    dep = window_sums(seq, ~is_out, cents, IN_DAYS * NS_PER_DAY, MAX_FLOWS, inclusive=True)
    usd = cents / 100.0
    mean = np.where(prior.count > 0, prior.total / np.maximum(prior.count, 1) / 100.0, np.nan)
    ratio = np.where(prior.count > 0, np.log((usd + 1.0) / (np.nan_to_num(mean) + 1.0)), 0.0)
    share = np.minimum(5.0, (day.total / 100.0) / (dep.total / 100.0 + 1.0))
    # hours since the previous outflow of the account: the last outflow among the prior members
    members = prior.member_rows if len(prior.member_rows) else np.zeros(1, dtype=np.int64)
    prev_row = np.where(prior.end > 0, members[np.maximum(prior.end - 1, 0)], -1)
    same = (prev_row >= 0) & (seq.code[np.maximum(prev_row, 0)] == seq.code)
    gap_h = np.where(same, (seq.t - seq.t[np.maximum(prev_row, 0)]) / NS_PER_HOUR, CAP_HOURS)

    sel = np.flatnonzero(is_out & seq.new)
    frame_rows = seq.row[sel]
    wd = flows.loc[frame_rows]
    accts = wd["account_id"].astype(str)
    addr = normalise_addresses(wd["address"]).fillna("")
    t_new = pd.Series(seq.t[sel], index=wd.index)
    addr_states = {a: {"v": PROFILE_VERSION, "a": states[a].get("a", {})} for a in accounts}
    prev_use = previous_use(accts, addr, t_new, addr_states)
    new_addr = (prev_use.isna() | ((t_new - prev_use) >= ADDRESS_DAYS * NS_PER_DAY)).to_numpy().astype(float)
    new_addr[(addr == "").to_numpy()] = 1.0
    change_h = _hours_since_change(batch, states, seq.account[sel], seq.t[sel])

    x = (
        np.column_stack(
            [
                np.log1p(usd[sel]),
                ratio[sel],
                np.log1p(prior.count[sel]),
                np.log1p(day.count[sel]),
                share[sel],
                new_addr,
                np.log1p(np.minimum(change_h, CAP_HOURS)),
                np.log1p(np.minimum(gap_h[sel], CAP_HOURS)),
            ]
        )
        if len(sel)
        else np.zeros((0, len(FEATURES)))
    )

    keep = keep_recent(seq, OUT_DAYS * NS_PER_DAY, MAX_FLOWS, is_out) | keep_recent(
        seq, IN_DAYS * NS_PER_DAY, MAX_FLOWS, ~is_out
    )
    items = per_account(seq, keep, [iso_at(seq.t, keep), seq.eid, seq.cols["out"], cents])
    known = addr != ""
    addresses = remember(accts[known], addr[known], t_new[known], addr_states, ADDRESS_DAYS * NS_PER_DAY, MAX_ADDRESSES)
    last_change = _last_change(batch, states)
    new_profiles = {
        a: {
            "v": PROFILE_VERSION,
            "f": items.get(a, []),
            "a": addresses.get(a, states[a].get("a", {})),
            "c": last_change.get(a, states[a].get("c")),
        }
        for a in accounts
    }
    return Features(x, frame_rows, seq.account[sel], seq.t[sel], seq.eid[sel], new_profiles)


def _changes(batch: Batch) -> pd.DataFrame:
    sec = batch.get("security_events")
    if sec is None:
        return pd.DataFrame({"acct": pd.Series(dtype=object), "t": pd.Series(dtype=np.int64)})
    return pd.DataFrame({"acct": sec["account_id"].astype(str).to_numpy(), "t": to_ns(sec["ts"])})


def _hours_since_change(
    batch: Batch, states: Mapping[str, Mapping[str, Any]], accts: np.ndarray, t: np.ndarray
) -> np.ndarray:
    ch = _changes(batch)
    with_c = [a for a, st in states.items() if st.get("c")]
    if with_c:
        prof = pd.DataFrame({"acct": with_c, "t": iso_to_ns([states[a]["c"] for a in with_c])})
        ch = pd.concat([ch, prof], ignore_index=True)
    out = np.full(len(t), CAP_HOURS)
    if ch.empty or len(t) == 0:
        return out
    q = pd.DataFrame({"acct": accts, "t": t, "i": np.arange(len(t))}).sort_values("t", kind="mergesort")
    ch = ch.astype({"t": np.int64}).sort_values("t", kind="mergesort").rename(columns={"t": "tc"})
    ch["t"] = ch["tc"]
    m = pd.merge_asof(q, ch, on="t", by="acct", direction="backward", allow_exact_matches=True)
    ok = m["tc"].notna().to_numpy()
    idx = m["i"].to_numpy()[ok]
    out[idx] = (m["t"].to_numpy()[ok] - m["tc"].to_numpy()[ok].astype(np.int64)) / NS_PER_HOUR
    return out


def _with_changes(
    batch: Batch, profiles: Mapping[str, Mapping[str, Any]], updated: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The profile updates plus the batch's security changes of accounts that moved no funds in it:
    a change in one batch must still count for a withdrawal in the next (ten batches = one)."""
    changed = _changes(batch)["acct"].unique()
    rest = [a for a in changed if a not in updated]
    if not rest:
        return updated
    states = {a: state_of(profiles, a) for a in rest}
    out = dict(updated)
    for a, c in _last_change(batch, states).items():
        if a in states:
            out[a] = {"v": PROFILE_VERSION, "f": [], "a": {}, **states[a], "c": c}
    return out


def _last_change(batch: Batch, states: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    ch = _changes(batch)
    if ch.empty:
        return {}
    latest = ch.groupby("acct")["t"].max()
    accts = [str(a) for a in latest.index]
    olds = [states.get(a, {}).get("c") for a in accts]
    old_ns = np.full(len(accts), np.iinfo(np.int64).min, dtype=np.int64)
    has = [i for i, o in enumerate(olds) if o]
    if has:
        old_ns[has] = iso_to_ns([str(olds[i]) for i in has])
    best = np.maximum(latest.to_numpy(dtype=np.int64), old_ns)
    return dict(zip(accts, ns_to_iso(best), strict=True))


def fit_model(
    batch: Batch, *, contamination: float = 0.01, n_estimators: int = 200, seed: int = 0, min_rows: int = 50
) -> Model:
    """Fit the forest on every outflow of ``batch`` (history, scanned as one batch)."""
    import sklearn
    from sklearn.ensemble import IsolationForest

    feats = compute_features(batch, {}, DetectorResult())
    n = 0 if feats is None else len(feats.x)
    if feats is None or n < min_rows:
        raise ValueError(f"only {n} priced withdrawals with features in the data; at least {min_rows} are needed")
    est = IsolationForest(n_estimators=n_estimators, contamination=contamination, random_state=seed, n_jobs=1)
    est.fit(feats.x)
    scores = -est.score_samples(feats.x)
    meta = {
        "format": MODEL_FORMAT,
        "feature_set": FEATURE_SET,
        "features": list(FEATURES),
        "sklearn": sklearn.__version__,
        "contamination": contamination,
        "n_estimators": n_estimators,
        "seed": seed,
        "n_samples": n,
        "threshold": float(-est.offset_),
        "medians": [float(v) for v in np.median(feats.x, axis=0)],
        "score_quantiles": {q: float(np.quantile(scores, float(q))) for q in ("0.5", "0.9", "0.99")},
        "data_from": ns_to_iso(np.array([feats.t.min()]))[0],
        "data_to": ns_to_iso(np.array([feats.t.max()]))[0],
    }
    return Model(est, meta)


class Isolation(Detector):
    name = "isolation"
    family = "learned"
    table = "transactions"
    extra_tables = ("security_events",)
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("amount_usd", "address")
    description = "A withdrawal an IsolationForest fitted on history finds unusual, with the features behind it."
    params: ClassVar[Mapping[str, Param]] = {
        "model": Param(
            "isolation",
            "Name of a model in the operator's settings (models.<name>: path and SHA-256); none there: it skips.",
            kind=str,
        ),
        "score_threshold": Param(
            0.0, "Anomaly score to report at (0 = the threshold fitted with the model).", ge=0, le=1
        ),
        "explain_top": Param(3, "How many features each finding names.", kind=int, ge=1, le=len(FEATURES)),
    }

    # a rule file names a model; it never points at a file (nothing a rule author writes is loaded)
    retired_params: ClassVar[Mapping[str, str]] = {
        "model_path": "model files are not named in rule files any more: the operator pins them in the settings "
        "(models.<name>: {path, sha256}) and a rule set may choose one with 'model: <name>'",
    }

    def _check_params(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", self.p["model"]):
            raise ParameterError(
                f"The 'model' parameter of Isolation must be a model name such as 'isolation'. Got {self.p['model']!r}."
            )
        self.model_: Model | None = None  # attached from the settings by vigil.models.bind_models
        self.refused_: str | None = None  # why the named model was refused, if it was

    def attach(self, model: Model | None, refused: str | None = None) -> None:
        """Give the detector its model (or the reason it has none); called once per rule-set load."""
        self.model_, self.refused_ = model, refused

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if self.model_ is None:
            n_out = 0 if df is None else int(df["kind"].isin(OUT_KINDS).sum())
            why = self.refused_ or (
                f"no model '{self.p['model']}' in the settings (models.{self.p['model']}): "
                "fit one with `vigil model fit`"
            )
            if n_out:
                result.skips.append(Skip(self.name, why, n_out))
            return result
        feats = None if df is None else compute_features(batch, profiles, result, self.name)
        result.profiles = _with_changes(batch, profiles, feats.profiles if feats is not None else {})
        if feats is None or len(feats.x) == 0 or df is None:
            return result
        est = self.model_.estimator
        anomaly = -est.score_samples(feats.x)
        threshold = self.p["score_threshold"] or float(self.model_.meta["threshold"])
        medians = np.asarray(self.model_.meta["medians"], dtype=np.float64)
        flagged = np.flatnonzero(anomaly >= threshold)
        rows = records(df, feats.rows[flagged], ("asset", "amount", "address"))
        for i, row in zip(flagged, rows, strict=True):
            x = feats.x[i]
            probes = np.repeat(x[None, :], len(FEATURES), axis=0)
            probes[np.arange(len(FEATURES)), np.arange(len(FEATURES))] = medians
            contrib = anomaly[i] + est.score_samples(probes)
            top = [j for j in np.argsort(-contrib, kind="mergesort")[: self.p["explain_top"]] if contrib[j] > 0]
            named = [_describe(FEATURES[j], x[j], medians[j], contrib[j]) for j in top]
            result.findings.append(
                self.finding(
                    feats.account[i],
                    ts_of(feats.t[i]),
                    key=str(feats.eid[i]),
                    kind="anomaly",
                    score=float(anomaly[i]),
                    event_ids=[feats.eid[i]],
                    evidence={
                        "anomaly_score": round(float(anomaly[i]), 4),
                        "threshold": round(threshold, 4),
                        "model_version": self.model_.version,
                        "feature_set": FEATURE_SET,
                        "top_features": named,
                        "explanation": "; ".join(_sentence(d) for d in named),
                        "features": {f: round(float(v), 4) for f, v in zip(FEATURES, x, strict=True)},
                        "asset": row["asset"],
                        "amount": row["amount"],
                        "address": row.get("address"),
                    },
                )
            )
        return result


def _describe(feature: str, value: float, typical: float, contribution: float) -> dict[str, Any]:
    label, inverse = _READABLE[feature]
    return {
        "feature": feature,
        "label": label,
        "value": round(float(inverse(value)), 2),
        "typical": round(float(inverse(typical)), 2),
        "contribution": round(float(contribution), 4),
    }


def _sentence(d: Mapping[str, Any]) -> str:
    if d["feature"] == "new_address":
        return "to a new address" if d["value"] >= 0.5 else "to a known address"
    return f"{d['label']}: {d['value']:,} (typical {d['typical']:,})"
