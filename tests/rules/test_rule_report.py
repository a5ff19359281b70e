"""Backtest reports: volume per account and day, precision and recall, and a rule change's effect."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Finding
from rules.engine import evaluate
from rules.loader import load_rules
from rules.report import TOTAL, compare, format_compare, format_report, per_rule_report

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def alert(
    rule: str, account: str, hours: float, events: tuple[str, ...], mode: str = "live"
) -> dict[str, Any]:
    return {
        "alert_id": f"a-{rule}-{events[0]}",
        "rule_id": rule,
        "detector": "d",
        "account_id": account,
        "severity": "high",
        "ts": T0 + timedelta(hours=hours),
        "event_ids": list(events),
        "mode": mode,
    }


ALERTS = [
    alert("r1", "a", 1, ("e1",)),
    alert("r1", "a", 2, ("e2",)),
    alert("r1", "a", 30, ("e3",)),
    alert("r1", "b", 5, ("e4",)),
    alert("r2", "c", 3, ("e5", "e6"), mode="shadow"),
]


def test_volume_per_rule_and_in_total() -> None:
    rows = {r.rule_id: r for r in per_rule_report(ALERTS, None, days=2)}
    r1 = rows["r1"]
    assert (r1.alerts, r1.accounts, r1.max_account_day, r1.mode) == (4, 2, 2, "live")
    assert r1.per_account_day == pytest.approx(4 / 2 / 2)
    assert r1.precision is None and r1.recall is None
    assert rows["r2"].mode == "shadow"
    total = rows[TOTAL]
    assert (total.alerts, total.accounts, total.mode) == (5, 3, "live+shadow")


def test_precision_and_recall_against_labelled_events() -> None:
    labels = {"e1", "e4", "e6", "e9"}  # e9 was never alerted on
    rows = {r.rule_id: r for r in per_rule_report(ALERTS, labels, days=2)}
    assert (rows["r1"].true_positives, rows["r1"].precision, rows["r1"].recall) == (2, 0.5, 0.5)
    assert (rows["r2"].precision, rows["r2"].recall) == (1.0, 0.25)
    assert (rows[TOTAL].precision, rows[TOTAL].recall) == (0.6, 0.75)
    table = format_report(list(rows.values()))
    assert "precision" in table and "50.0%" in table
    with pytest.raises(ValueError):
        per_rule_report(ALERTS, None, days=0)


def test_compare_lists_added_and_dropped_alerts_per_rule() -> None:
    new = [a for a in ALERTS if a["event_ids"] != ["e2"]] + [alert("r3", "d", 9, ("e7",))]
    diffs = {d.rule_id: d for d in compare(ALERTS, new)}
    assert (diffs["r1"].old, diffs["r1"].new, diffs["r1"].unchanged) == (4, 3, 3)
    assert [a["event_ids"] for a in diffs["r1"].dropped] == [["e2"]] and diffs["r1"].added == []
    assert [a["event_ids"] for a in diffs["r3"].added] == [["e7"]]
    assert diffs["r2"].added == diffs["r2"].dropped == []
    text = format_compare(list(diffs.values()))
    assert "- r1: account a" in text and "+ r3: account d" in text


def test_raising_a_threshold_drops_exactly_the_alerts_below_it(tmp_path: Path) -> None:
    """A real rule set, evaluated twice: the comparison shows the effect of the change."""

    def rules(threshold: float) -> Any:
        f = tmp_path / f"r{threshold}.yaml"
        f.write_text(
            textwrap.dedent(f"""\
            rules:
              - id: big-withdrawal
                detector: large_withdrawal
                when: finding.evidence.amount_usd >= {threshold}
                severity: high
            """)
        )
        return load_rules(f)

    findings = [
        Finding(
            "large_withdrawal",
            f"acct{i % 3}",
            T0 + timedelta(hours=i),
            f"w{i}",
            "absolute",
            0.8,
            (f"w{i}",),
            {"amount_usd": 5_000.0 * (i + 1)},
            "transfer",
        )
        for i in range(8)
    ]

    def run(threshold: float) -> list[dict[str, Any]]:
        return [
            {
                "alert_id": d.alert_id,
                "rule_id": d.rule.id,
                "detector": d.finding.detector,
                "account_id": d.finding.account_id,
                "severity": d.severity,
                "ts": d.finding.ts,
                "event_ids": list(d.finding.event_ids),
                "mode": d.mode,
            }
            for d in evaluate(rules(threshold), findings, {}, now=T0)
        ]

    (diff,) = compare(run(10_000.0), run(25_000.0))
    assert (diff.old, diff.new, len(diff.added)) == (7, 4, 0)
    assert [a["event_ids"][0] for a in diff.dropped] == ["w1", "w2", "w3"]
