"""The labelled evaluation generator, its scoring, and ``vigil eval`` end to end (small sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detectors.geo import haversine_km
from detectors.useragent import parse
from vigil_lab.eval_cmd import eval_command
from vigil_lab.evalgen import HOSTING, EvalSpec, generate
from vigil_lab.evalscore import score

SPEC = EvalSpec(seed=3, accounts=150, days=30, attacks_per_model=8)


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return generate(SPEC)


def test_same_spec_same_data(data) -> None:  # type: ignore[no-untyped-def]
    again = generate(SPEC)
    for name, df in data.frames.items():
        pd.testing.assert_frame_equal(df, again.frames[name])
    pd.testing.assert_frame_equal(data.labels, again.labels)
    other = generate(EvalSpec(seed=4, accounts=150, days=30, attacks_per_model=8))
    assert not other.frames["logins"]["ip"].equals(data.frames["logins"]["ip"])


def test_labels_point_at_real_events(data) -> None:  # type: ignore[no-untyped-def]
    lab = data.labels
    for table, group in lab.groupby("table"):
        assert set(group["event_id"]) <= set(data.frames[table]["event_id"]), table
    assert data.attacks["attacker"].value_counts().to_dict() == {"naive": 8, "vpn": 8, "targeted": 8}
    per = lab.groupby(["attack_id", "role"]).size().unstack(fill_value=0)
    assert (per["login"] == 1).all() and (per["withdrawal"] == 1).all()
    logins = data.frames["logins"].set_index("event_id")
    assert logins.loc[lab[lab["role"] == "login"]["event_id"], "success"].all()
    assert not logins.loc[lab[lab["role"] == "login_failed"]["event_id"], "success"].any()
    tx = data.frames["transactions"]
    for r in data.attacks.itertuples(index=False):
        w = tx.set_index("event_id").loc[r.withdrawal_event_id]
        assert w["kind"] == "withdrawal" and w["ts"] > r.login_ts
        before = tx[(tx["account_id"] == r.account_id) & (tx["ts"] < w["ts"])]
        assert w["address"] not in set(before["address"])


def _home(data, account: str) -> pd.Series:  # type: ignore[no-untyped-def]
    lg = data.frames["logins"]
    mine = lg[(lg["account_id"] == account) & ~lg["event_id"].isin(data.labels["event_id"])]
    return mine


def test_attacker_models_follow_the_protocol(data) -> None:  # type: ignore[no-untyped-def]
    lg = data.frames["logins"].set_index("event_id")
    logins = data.labels[data.labels["role"] == "login"].merge(data.attacks, on=["attack_id", "attacker"])
    for r in logins.itertuples(index=False):
        atk = lg.loc[r.event_id]
        mine = _home(data, r.account_id)
        home_cc = mine["country"].mode()[0]
        assert atk["device_id"] not in set(mine["device_id"])
        if r.attacker == "naive":
            assert atk["country"] != home_cc
        elif r.attacker == "vpn":
            assert atk["country"] == home_cc and atk["asn"] in HOSTING
        else:
            assert atk["city"] == mine["city"].mode()[0] and atk["asn"] not in HOSTING
            assert parse(atk["user_agent"]).browser in {parse(u).browser for u in mine["user_agent"]}


def test_legitimate_travel_is_possible(data) -> None:  # type: ignore[no-untyped-def]
    lg = data.frames["logins"]
    legit = lg[lg["success"] & ~lg["event_id"].isin(data.labels["event_id"]) & ~lg["asn"].isin(HOSTING)]
    legit = legit.sort_values(["account_id", "ts"])
    prev = legit.groupby("account_id")[["lat", "lon", "ts"]].shift(1)
    km = haversine_km(prev["lat"], prev["lon"], legit["lat"], legit["lon"])
    hours = (legit["ts"] - prev["ts"]).dt.total_seconds() / 3600
    fast = (km > 500) & (km / np.maximum(hours, 1.0) > 1000)
    assert int(fast.sum()) == 0
    assert int((km > 500).sum()) > 0  # but people do travel


def test_score_counts_recall_and_false_alarms(data) -> None:  # type: ignore[no-untyped-def]
    lab = data.labels
    naive = data.attacks[data.attacks["attacker"] == "naive"].iloc[0]
    atk_login = lab[(lab["attack_id"] == naive["attack_id"]) & (lab["role"] == "login")]["event_id"].iloc[0]
    start = SPEC.window_start
    lg, tx = data.frames["logins"], data.frames["transactions"]
    legit = lg[~lg["event_id"].isin(lab["event_id"])]
    legit_login = legit[legit["ts"] >= start]["event_id"].iloc[0]
    warmup_login = legit[legit["ts"] < start]["event_id"].iloc[0]  # history: not counted
    wds = tx[(tx["kind"] == "withdrawal") & ~tx["event_id"].isin(lab["event_id"]) & (tx["ts"] >= start)]
    legit_wd = wds["event_id"].iloc[0]
    alerts = [
        {"rule_id": "r1", "event_ids": [atk_login], "ts": "2000-01-01T00:00:00+00:00", "mode": "live"},
        {"rule_id": "r2", "event_ids": [legit_login], "ts": "2000-01-01T00:00:00+00:00", "mode": "live"},
        {"rule_id": "r3", "event_ids": [legit_wd], "ts": "2000-01-01T00:00:00+00:00", "mode": "live"},
        {"rule_id": "r4", "event_ids": [legit_login], "ts": "2000-01-01T00:00:00+00:00", "mode": "shadow"},
        {"rule_id": "r5", "event_ids": [warmup_login], "ts": "2000-01-01T00:00:00+00:00", "mode": "live"},
    ]
    rep = score(data, alerts)
    rows = {r["attacker"]: r for r in rep.rows}
    assert rows["naive"]["login_recall"] == pytest.approx(1 / 8)
    assert rows["naive"]["withdrawal_covered"] == pytest.approx(1 / 8)  # the login alert came first
    assert rows["naive"]["withdrawal_recall"] == 0 and rows["vpn"]["login_recall"] == 0
    assert (rep.login_alerts, rep.withdrawal_alerts, rep.per_rule) == (1, 1, {"r2": 1, "r3": 1})
    assert score(data, alerts, live_only=False).login_alerts == 2


def test_eval_command_end_to_end(tmp_path: Path) -> None:
    md = tmp_path / "quality.md"
    res = CliRunner().invoke(
        eval_command,
        [
            "--accounts",
            "120",
            "--attacks",
            "6",
            "--days",
            "30",
            "--seed",
            "5",
            "--markdown",
            str(md),
            "--out",
            str(tmp_path / "data"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| naive | 6 |" in res.output and "per 100" in res.output
    assert md.read_text(encoding="utf-8").count("| vpn |") == 1
    assert (tmp_path / "data" / "labels.csv").exists() and (tmp_path / "data" / "logins.csv").exists()
    bad = CliRunner().invoke(eval_command, ["--accounts", "60", "--attacks", "20"])
    assert bad.exit_code != 0 and "too small" in str(bad.exception or bad.output)


def test_stress_knobs_change_what_they_say(data) -> None:  # type: ignore[no-untyped-def]
    """Each stress knob at 1 turns every attack (or legitimate desktop login) into its stress case;
    at 0 (the default) the data is the unstressed generator's, value for value."""
    import dataclasses

    stressed = generate(dataclasses.replace(SPEC, patient_share=1.0, partial_share=1.0, device_reuse_share=1.0,
                                            known_address_share=1.0, cookie_clear_rate=1.0))
    lab, tx, lg = stressed.labels, stressed.frames["transactions"].set_index("event_id"), stressed.frames["logins"]
    logins = lg.set_index("event_id")
    for r in stressed.attacks.itertuples(index=False):
        login = lab[(lab["attack_id"] == r.attack_id) & (lab["role"] == "login")]["event_id"].iloc[0]
        wd = tx.loc[r.withdrawal_event_id]
        assert wd["ts"] - logins.loc[login, "ts"] >= pd.Timedelta(days=1)  # patient
        own = lg[(lg["account_id"] == r.account_id) & ~lg["event_id"].isin(lab["event_id"])]
        assert logins.loc[login, "device_id"].startswith(f"{r.account_id}-d")  # the victim's device replayed
        assert not str(wd["address"]).startswith("attacker-")  # an address the victim used
        assert len(own)
    desktop = lg[lg["device_id"].str.contains("-d0")]
    assert desktop["device_id"].str.contains("-c").mean() > 0.9  # cookies cleared on desktop logins
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(stressed.frames["transactions"], data.frames["transactions"])


def test_eval_command_knobs(tmp_path: Path) -> None:
    r = CliRunner().invoke(eval_command, ["--accounts", "60", "--attacks", "3", "--days", "20", "--warmup-days", "5",
                                          "--knob", "patient_share=0.5", "--stress"])
    assert r.exit_code == 0, r.output
    assert "patient_share=0.5" in r.output and "device_reuse_share=0.2" in r.output
    r = CliRunner().invoke(eval_command, ["--knob", "patient=0.5"])
    assert r.exit_code != 0 and "unknown knob 'patient' (did you mean 'patient_share'?)" in str(r.exception)
