"""The demo data set: canonical, deterministic, and its planted incidents are caught by the default pack."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from detectors import DETECTORS, Batch, Finding
from detectors.contract import TABLES
from rules import evaluate, load_rules
from vigil_lab import synth

LOCALES = {"en", "zh-CN", "zh-TW", "ko", "ja"}


@pytest.fixture(scope="module")
def demo() -> tuple[dict[str, pd.DataFrame], synth.Labels]:
    return synth.generate_with_labels()  # exactly what the demo uses: seed 7, 200 accounts, 30 days


@pytest.fixture(scope="module")
def scanned(demo: tuple[dict[str, pd.DataFrame], synth.Labels]) -> tuple[list[Finding], list[Any]]:
    frames, _ = demo
    rules = load_rules()
    batch = Batch.from_frames(frames)
    now = synth.DEFAULT_START + timedelta(days=30)
    findings = [f for det in rules.detectors.values() for f in det.scan(batch, {}, now=now).findings]
    accounts = {str(a["account_id"]): {str(k): v for k, v in a.items()}
                for a in frames["accounts"].to_dict("records")}
    return findings, evaluate(rules, findings, accounts, now=now)


def _touches(ids: Iterable[str], events: set[str]) -> bool:
    return not events.isdisjoint(ids)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, la = synth.generate_with_labels(seed=3, accounts=30)
    b, lb = synth.generate_with_labels(seed=3, accounts=30)
    c, _ = synth.generate_with_labels(seed=4, accounts=30)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert la == lb
    assert not a["logins"].equals(c["logins"])


def test_tables_follow_the_input_contract(demo: tuple[dict[str, pd.DataFrame], synth.Labels]) -> None:
    frames, _ = demo
    assert set(frames) == set(TABLES)
    start, end = synth.DEFAULT_START, synth.DEFAULT_START + timedelta(days=30)
    accounts = set(frames["accounts"]["account_id"])
    all_ids: list[str] = []
    for name, table in TABLES.items():
        df = frames[name]
        assert list(df.columns) == list(table.names), name
        assert len(df) > 0, name
        for required in table.required:
            assert df[required].notna().all(), f"{name}.{required} has nulls"
        for col in table.columns:
            if col.choices:
                assert set(df[col.name].dropna()) <= set(col.choices), f"{name}.{col.name}"
        if table.is_event:
            assert str(df["ts"].dt.tz) == "UTC"
            assert df["ts"].min() >= start and df["ts"].max() < end, name
            assert df["ts"].is_monotonic_increasing, name
            assert set(df["account_id"]) <= accounts, name
            all_ids += list(df["event_id"])
    assert len(all_ids) == len(set(all_ids)), "event ids must be unique across tables"

    acc = frames["accounts"]
    assert acc["account_id"].is_unique
    assert set(acc["locale"]) == LOCALES
    assert acc["phone"].map(lambda p: bool(re.fullmatch(r"\+[1-9]\d{7,14}", p))).all()
    assert acc["email"].str.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|net|org)").all()
    for tz in acc["timezone"].unique():
        ZoneInfo(tz)  # raises for an unknown IANA name
    assert 0.2 < acc["anti_phishing_code"].notna().mean() < 0.6
    assert acc["push_token"].notna().any() and acc["push_token"].isna().any()
    assert set(acc["tier"]) >= {"retail", "vip"}
    assert (acc["created_at"] < start).all()

    logins = frames["logins"]
    assert logins["country"].nunique() >= 9
    assert logins["lat"].between(-90, 90).all() and logins["lon"].between(-180, 180).all()
    assert logins["ip"].str.fullmatch(r"\d{1,3}(\.\d{1,3}){3}").all()
    assert 0.005 < (~logins["success"]).mean() < 0.06
    tx = frames["transactions"]
    assert set(tx["kind"]) == set(TABLES["transactions"].column("kind").choices or ())
    assert (tx["amount"] > 0).all() and (tx["amount_usd"] > 0).all()
    assert tx.loc[tx["kind"] == "withdrawal", "address"].notna().all()
    assert tx.loc[tx["kind"] == "trade", ["symbol", "side"]].notna().all().all()


def test_every_planted_incident_is_detected_and_alerted(
    demo: tuple[dict[str, pd.DataFrame], synth.Labels], scanned: tuple[list[Finding], list[Any]]
) -> None:
    labels = demo[1]
    findings, decisions = scanned
    kinds = {i["kind"] for i in labels["planted"]}
    assert kinds == {"takeover", "large_withdrawal", "leverage_spike", "margin_call"}
    assert sum(i["kind"] == "takeover" for i in labels["planted"]) >= 5
    for inc in labels["planted"]:
        events = set(inc["event_ids"])
        assert inc["expect"], inc
        for det in inc["expect"]:
            assert any(f.detector == det and _touches(f.event_ids, events) for f in findings), (det, inc)
        assert any(_touches(d.finding.event_ids, events) for d in decisions), f"no rule alerts on {inc}"


def test_a_takeover_is_the_whole_kill_chain(demo: tuple[dict[str, pd.DataFrame], synth.Labels]) -> None:
    frames, labels = demo
    logins, tx, sec = frames["logins"], frames["transactions"], frames["security_events"]
    for inc in (i for i in labels["planted"] if i["kind"] == "takeover"):
        acct, ids = inc["account_id"], set(inc["event_ids"])
        own = logins[logins["account_id"] == acct]
        bad = own[own["event_id"].isin(ids) & own["success"]].iloc[0]
        before = own[(own["ts"] < bad["ts"]) & ~own["event_id"].isin(ids)]  # the owner's own history
        home = before["country"].mode()[0]
        assert bad["country"] != home and bad["country"] not in set(before["country"])
        assert bad["device_id"] not in set(before["device_id"])
        s = sec[sec["event_id"].isin(ids)]
        w = tx[tx["event_id"].isin(ids)].iloc[0]
        assert len(s) >= 1 and (s["ts"] > bad["ts"]).all() and (s["device_id"] == bad["device_id"]).all()
        assert w["kind"] == "withdrawal" and w["ts"] > s["ts"].max()
        earlier = tx[(tx["account_id"] == acct) & (tx["ts"] < w["ts"])]
        assert w["address"] not in set(earlier["address"].dropna()), "the thief's address is new"


def test_normal_behaviour_is_quiet(
    demo: tuple[dict[str, pd.DataFrame], synth.Labels], scanned: tuple[list[Finding], list[Any]]
) -> None:
    frames, labels = demo
    findings, decisions = scanned
    planted = {e for i in labels["planted"] for e in i["event_ids"]}
    travel = {e for i in labels["benign"] for e in i["event_ids"]}
    # the three backbone detectors fire on planted incidents and on labelled trips abroad, nothing else
    core = [f for f in findings if f.detector in ("new_location", "large_withdrawal", "high_leverage")]
    stray = [f for f in core if not _touches(f.event_ids, planted | travel)]
    assert stray == [], stray[:5]
    assert [f for f in core if _touches(f.event_ids, travel)], "trips abroad are new countries too"
    assert all(f.detector == "new_location" for f in core if _touches(f.event_ids, travel))
    # whatever the pack grows into: alerts on ordinary events stay rare (<= 5 per 100 accounts)
    noise = {d.alert_id for d in decisions if not _touches(d.finding.event_ids, planted | travel)}
    assert len(noise) <= 0.05 * len(frames["accounts"]), sorted(noise)[:10]
    trips = len(labels["benign"])
    assert 0 < trips <= 0.12 * len(frames["accounts"])


def test_normal_positions_stay_moderate(demo: tuple[dict[str, pd.DataFrame], synth.Labels]) -> None:
    frames, labels = demo
    planted = {e for i in labels["planted"] for e in i["event_ids"]}
    pos = frames["positions"]
    normal = pos[~pos["event_id"].isin(planted)]
    assert normal["leverage"].max() <= 25 and normal["margin_ratio"].max() < 0.6
    spiked = pos[pos["event_id"].isin(planted)]
    assert spiked["leverage"].max() >= 50 and spiked["margin_ratio"].max() >= 0.9


@pytest.mark.parametrize(("accounts", "days"), [(1, 30), (40, 3)])
def test_small_data_sets_still_plant_detectable_incidents(accounts: int, days: int) -> None:
    frames, labels = synth.generate_with_labels(seed=11, accounts=accounts, days=days)
    assert labels["planted"]
    batch = Batch.from_frames(frames)
    now = synth.DEFAULT_START + timedelta(days=days)
    findings = [f for d in load_rules().detectors.values() for f in d.scan(batch, {}, now=now).findings]
    for inc in labels["planted"]:
        events = set(inc["event_ids"])
        for det in inc["expect"]:
            assert any(f.detector == det and _touches(f.event_ids, events) for f in findings), inc


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_dir_round_trips_through_the_file_source(tmp_path: Path, fmt: str) -> None:
    from vigil.ingest import validate
    from vigil.sources import FileSource

    frames = synth.generate(seed=5, accounts=15, days=10)
    written = synth.write_dir(frames, tmp_path / "data", fmt=fmt)
    assert sorted(p.name for p in written) == sorted(f"{t}.{fmt}" for t in TABLES)
    src = FileSource(tmp_path / "data")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for name in ("logins", "transactions", "positions", "security_events"):
        got = src.read(name, {}, 10**6, now)
        good, quarantined = validate(name, got.raw)
        assert quarantined == [], quarantined[:3]
        assert got.absent == frozenset()
        cols = list(TABLES[name].names)
        pd.testing.assert_frame_equal(good[cols], frames[name][cols], check_dtype=False)
    acc = src.accounts(set(frames["accounts"]["account_id"]))
    good_acc, q = validate("accounts", acc)
    assert q == [] and len(good_acc) == len(frames["accounts"])


def test_write_dir_rejects_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("fmt must be 'csv' or 'parquet'. Got 'xlsx'")):
        synth.write_dir({}, tmp_path, fmt="xlsx")
    with pytest.raises(ValueError, match="not contract tables: login"):
        synth.write_dir({"login": pd.DataFrame()}, tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"accounts": 0}, "accounts must be a whole number >= 1. Got 0"),
     ({"days": 2}, "days must be a whole number >= 3. Got 2"),
     ({"start": datetime(2026, 1, 1)}, "start must be timezone-aware")],
)
def test_bad_arguments_say_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        synth.generate(**kwargs)


def test_big_is_canonical_deterministic_and_gives_the_checks_work() -> None:
    frames = synth.big(60_000, 40_000, seed=1)
    again = synth.big(60_000, 40_000, seed=1)
    assert {k: len(v) for k, v in frames.items()} == {
        "accounts": 1_200, "logins": 60_000, "transactions": 40_000, "positions": 8_000}
    for name, df in frames.items():
        assert set(df.columns) <= set(TABLES[name].names), name
        assert set(TABLES[name].required) <= set(df.columns), name
        pd.testing.assert_frame_equal(df, again[name])
        if name != "accounts":
            assert df["ts"].is_monotonic_increasing and df["event_id"].is_unique
            assert set(df["account_id"]) <= set(frames["accounts"]["account_id"])
    batch = Batch.from_frames(frames)
    now = synth.DEFAULT_START + timedelta(days=30)
    found = {name: DETECTORS[name]().scan(batch, {}, now=now).findings
             for name in ("new_location", "large_withdrawal", "high_leverage")}
    foreign = frames["logins"]["country"].isin(["NG", "RU", "VN", "NL", "RO"]) | (
        frames["logins"]["device_id"] == "dev-attacker")
    assert 0 < foreign.sum() < 0.01 * 60_000
    assert found["new_location"] and all(
        f.evidence["country"] in {"NG", "RU", "VN", "NL", "RO", "US"} for f in found["new_location"])
    assert found["large_withdrawal"] and found["high_leverage"]
    assert len(found["high_leverage"]) < 0.02 * 8_000
