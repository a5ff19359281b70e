"""The learned detector's model file: skops, hashed and pinned, never pickle.

A model is the operator's artefact: ``vigil model fit`` writes it, the settings name it and pin
its SHA-256 (``models: {<name>: {path, sha256}}``), and :func:`load_model` verifies the hash
before anything parses the bytes, then reads them with skops and an explicit trusted-types list.
Nothing in a rule file ever reaches this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from detectors.base import ParameterError

FEATURE_SET = 1
FEATURES = (
    "log_amount_usd",
    "log_ratio_to_mean",
    "log_prior_withdrawals",
    "log_outflows_24h",
    "share_of_deposits_24h",
    "new_address",
    "log_hours_since_change",
    "log_hours_since_prev_withdrawal",
)
MODEL_FORMAT = "vigil-isolation-forest"


@dataclass(frozen=True)
class Model:
    estimator: Any
    meta: Mapping[str, Any]

    @property
    def version(self) -> str:
        return str(self.meta.get("sha256", ""))[:12]


# what a model file may contain besides skops' defaults (plain containers, numpy arrays): checked
# before anything is constructed, so a file naming any other type is refused unread
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


class ModelError(ParameterError):
    """A model file that is missing, altered, foreign or unsafe: the learned detector refuses it."""


def load_model(path: str | Path, sha256: str) -> Model:
    """Verify ``path`` against the SHA-256 pinned in the operator's settings, then read it with skops.

    Order matters: the bytes are hashed before any parser sees them, and skops is given an
    explicit trusted-types list (:data:`TRUSTED_TYPES`; anything else in the file is refused
    before construction) -- a model file can never run code, unlike a pickle or joblib file.
    """
    import sklearn
    import skops.io as sio
    from sklearn.ensemble import IsolationForest

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"The model file {p} does not exist; fit one with `vigil model fit`.")
    data = p.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.lower():
        raise ModelError(f"The model file {p} has SHA-256 {digest[:16]}…, not the {sha256[:16]}… pinned in "
                         "the settings; refusing to read it.")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:  # not a skops archive (a pickle, a joblib file, garbage)
        raise ModelError(f"The model file {p} is not a skops model ({type(e).__name__}); refit it with "
                         "`vigil model fit` (pickle and joblib files are never loaded).") from None
    foreign = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if foreign:
        raise ModelError(f"The model file {p} contains types outside the trusted list: {', '.join(foreign)}.")
    try:
        obj = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except Exception as e:
        raise ModelError(f"The model file {p} cannot be read: {type(e).__name__}: {e}") from None
    est = obj.get("estimator") if isinstance(obj, dict) else None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(est, IsolationForest) or not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"The model file {p} is not a Vigil isolation-forest model.")
    theirs = [str(f) for f in meta.get("features", [])]
    if meta.get("feature_set") != FEATURE_SET or theirs != list(FEATURES):
        extra = [f for f in theirs if f not in FEATURES]
        lacking = [f for f in FEATURES if f not in theirs]
        diff = "; ".join(
            part
            for part in (
                f"it has {', '.join(extra)}" if extra else "",
                f"it lacks {', '.join(lacking)}" if lacking else "",
                "same names in another order" if not extra and not lacking and theirs != list(FEATURES) else "",
            )
            if part
        )
        raise ModelError(
            f"The model {p} was fitted on feature set {meta.get('feature_set')}"
            f"{' (' + diff + ')' if diff else ''}, but this Vigil computes feature set {FEATURE_SET}. "
            "Refit it with `vigil model fit`."
        )
    if meta.get("sklearn") != sklearn.__version__:
        raise ModelError(
            f"The model {p} was fitted with scikit-learn {meta.get('sklearn')}, "
            f"this is {sklearn.__version__}: refit it with `vigil model fit`."
        )
    if getattr(est, "n_features_in_", None) != len(FEATURES):
        raise ModelError(
            f"The model {p} expects {getattr(est, 'n_features_in_', '?')} features, not {len(FEATURES)}."
        )
    return Model(est, {**meta, "sha256": digest})


def save_model(model: Model, path: str | Path, *, fitted_at: datetime) -> dict[str, Any]:
    """Write ``PATH`` (a skops archive holding the estimator and its metadata); returns the metadata
    with the file's SHA-256, which the operator pins in the settings (``models.<name>.sha256``)."""
    import skops.io as sio

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {**model.meta, "fitted_at": fitted_at.isoformat()}
    sio.dump({"estimator": model.estimator, "meta": meta}, p)
    return {**meta, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
