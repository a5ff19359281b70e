"""The withdrawal_risk factor fit: smoothed likelihood ratios per category, hand-set where data is thin."""

from __future__ import annotations

import pandas as pd
import pytest

from detectors.withdrawal_risk import WithdrawalRisk
from vigil_lab.fitwithdrawal import CATEGORIES, fit, fitted_params, matched_thresholds


def _table(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {"address": "known", "share": "small", "change": "none", "device": "known", "network": "known",
            "login": "recent", "age": "old", "amount": 1.0, "log10": 0.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_ratios_are_smoothed_counts_and_thin_categories_keep_the_hand_set_value() -> None:
    # 10 takeovers (8 to a new address), 100 owners (4 to a new address)
    rows = [{"y": 1, "address": "new"}] * 8 + [{"y": 1}] * 2 + [{"y": 0, "address": "new"}] * 4 + [{"y": 0}] * 96
    got = fit(_table(rows), alpha=1.0, min_count=5)
    k = len(CATEGORIES["address"])
    assert got["address"]["new"]["lr"] == pytest.approx(((8 + 1) / (10 + k)) / ((4 + 1) / (100 + k)), abs=0.01)
    assert got["address"]["known"]["lr"] < 1 < got["address"]["new"]["lr"]
    assert got["address"]["cooling"]["lr"] is None  # never seen: the hand-set factor stays
    hand = dict(WithdrawalRisk().p)
    params = fitted_params(got, hand)
    assert params["new_address"] == got["address"]["new"]["lr"]
    assert params["cooling_address"] == hand["cooling_address"]
    assert len(params["share_factors"]) == 3


def test_matched_thresholds_flag_no_more_legitimate_withdrawals_than_the_hand_set_ones() -> None:
    hand = _table([{"y": 0, "log10": x} for x in (0.0, 0.5, 1.2, 2.5)])  # 2 at >= 1, 1 at >= 2
    fitted = _table([{"y": 0, "log10": x} for x in (0.1, 1.0, 2.0, 3.5)])
    lo, hi = matched_thresholds(hand, fitted)
    assert lo == pytest.approx(1.05) and hi == pytest.approx(2.05)


def test_logistic_ratios_hold_the_reference_at_one_and_follow_the_labels() -> None:
    from vigil_lab.fitwithdrawal import REFERENCE, fit_logistic

    rows = ([{"y": 1, "address": "new", "device": "new"}] * 30 + [{"y": 1, "address": "known", "device": "new"}] * 5
            + [{"y": 0, "address": "new", "device": "known"}] * 20 + [{"y": 0, "address": "known"}] * 300
            + [{"y": 0, "address": "first"}] * 20 + [{"y": 1, "address": "first"}] * 2)
    got = fit_logistic(_table(rows), min_count=5)
    assert got["address"][REFERENCE["address"]]["lr"] == 1.0
    assert got["device"]["new"]["lr"] > 1 > got["device"]["known"]["lr"]
    assert got["address"]["new"]["lr"] > got["address"]["known"]["lr"]
    assert got["address"]["cooling"]["lr"] is None  # never seen: kept hand-set
