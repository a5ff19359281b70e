"""The evidence of a ``withdrawal_risk`` finding: each feature's factor and sentence, the score, the
posterior probability and the one-line text a message or a ticket shows ("new address (×8.0) ·
95% of the balance (×4.0) · device new in this session (first seen 1.0 h before) (×6.0)")."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.withdrawal_factors import Scoring


def fmt(f: float) -> str:
    return f"{f:.1f}" if f < 10 else f"{f:,.0f}"


def evidence(s: Scoring, i: int, log10: float, address: str | None, asset: str, amount: float) -> dict[str, Any]:
    """The evidence of withdrawal ``i`` of ``s`` with the score ``log10``."""
    n, x = s.n, s.extra
    feats: dict[str, dict[str, Any]] = {
        k: {"factor": round(float(v[i]), 3), "text": s.texts.get(k, [None] * n)[i]} for k, v in s.factors.items()
    }
    odds = s.p["prior_odds"] * 10 ** min(log10, 300)
    parts = [
        f"{d['text']} (×{fmt(d['factor'])})"
        for _, d in sorted(feats.items(), key=lambda kv: -kv[1]["factor"])
        if d["factor"] >= 1.5 and d["text"]
    ]
    mult, share, age_d = x["mult"], x["share"], x["age_d"]
    return {
        "log10_score": round(log10, 3),
        "probability": round(odds / (1 + odds), 4),
        "factors": feats,
        "top_feature": max(feats, key=lambda k: feats[k]["factor"]),
        "text": " · ".join(parts) or "several weak signals",
        "address": address,
        "new_address": bool(x["a_known"][i] and not (x["used"][i] or x["in_book"][i])),
        "asset": asset,
        "amount": amount,
        "amount_usd": None if not x["priced"][i] else round(x["usd_c"][i] / 100, 2),
        "multiple_of_usual": None if np.isnan(mult[i]) else round(float(mult[i]), 2),
        "share_of_balance": None if np.isnan(share[i]) else round(float(share[i]), 3),
        "hours_after_change": None if x["f_ch"][i] == 1.0 else round(float(x["hours"][i]), 2),
        "hours_after_login": None if not x["in_session"][i] else round(float(x["since_login"][i]), 2),
        "account_age_days": None if np.isnan(age_d[i]) else round(float(age_d[i]), 1),
    }
