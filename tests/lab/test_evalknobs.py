"""The knobs added for issue 13 point 1 (each changes what it claims, and nothing at 0), the seed
split of ``vigil eval``, its margin figure and its precision-recall plots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from vigil.errors import ConfigError
from vigil_lab.eval_cmd import eval_command, seed_roles
from vigil_lab.evalgen import EvalSpec, generate
from vigil_lab.evalscore import score

SPEC = EvalSpec(seed=7, accounts=150, days=30, attacks_per_model=6)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def base():  # type: ignore[no-untyped-def]
    return generate(SPEC)


def _legit(data, table: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    df = data.frames[table]
    return df[~df["event_id"].isin(data.labels["event_id"])]


def test_new_knobs_at_zero_leave_logins_and_transactions_alone(base) -> None:  # type: ignore[no-untyped-def]
    """The new knobs draw from their own random stream: at 0 the logins, transactions and labels
    are those of a spec without margin traders (whose positions come from that stream too)."""
    plain = generate(dataclasses.replace(SPEC, margin_share=0.0))
    for name in ("logins", "transactions", "security_events"):
        pd.testing.assert_frame_equal(base.frames[name], plain.frames[name])
    pd.testing.assert_frame_equal(base.labels, plain.labels)
    assert "positions" not in plain.frames and len(plain.margin_episodes) == 0


def test_family_devices_are_shared_between_accounts(base) -> None:  # type: ignore[no-untyped-def]
    def shared(data) -> int:  # type: ignore[no-untyped-def]
        lg = _legit(data, "logins")
        return int((lg.groupby("device_id")["account_id"].nunique() > 1).sum())

    assert shared(base) == 0
    fam = generate(dataclasses.replace(SPEC, family_device_share=0.5))
    assert shared(fam) >= 20  # several accounts on one device
    lg = _legit(fam, "logins")
    dev = lg.groupby("device_id")["account_id"].nunique().idxmax()
    same = lg[lg["device_id"] == dev]
    assert same["user_agent"].str.split("/").str[0].nunique() == 1  # the same browser, not a look-alike


def test_new_phones_for_half_the_accounts(base) -> None:  # type: ignore[no-untyped-def]
    def renewed(data) -> float:  # type: ignore[no-untyped-def]
        lg = _legit(data, "logins")
        phone_users = lg[lg["device_id"].str.contains("-d1")]["account_id"].unique()
        new = lg[lg["device_id"].str.endswith("-d1-new")]["account_id"].unique()
        return len(new) / len(phone_users)

    assert renewed(base) < 0.25
    assert renewed(generate(dataclasses.replace(SPEC, new_phone_share=0.5))) > 0.35


def test_salary_days_add_large_withdrawals_to_known_addresses(base) -> None:  # type: ignore[no-untyped-def]
    paid = generate(dataclasses.replace(SPEC, salary_share=0.5))
    before, after = _legit(base, "transactions"), _legit(paid, "transactions")
    assert len(after) > len(before)
    cols = ["account_id", "ts", "kind", "amount", "address"]  # event ids are renumbered
    extra = after[cols].merge(before[cols], how="left", indicator=True).query("_merge == 'left_only'")
    wd = extra[extra["kind"] == "withdrawal"]
    dep = extra[extra["kind"] == "deposit"]
    assert len(wd) >= 20 and len(dep) == len(wd)
    for r in wd.itertuples(index=False):  # within hours of a salary deposit, most of it, to an own address
        pay = dep[(dep["account_id"] == r.account_id) & (dep["ts"] <= r.ts)].iloc[-1]
        assert r.ts - pay["ts"] <= pd.Timedelta(hours=6)
        assert 0.55 * pay["amount"] <= r.amount <= pay["amount"]
        assert str(r.address).startswith(f"{r.account_id}-addr")


def test_exchange_transfers_move_most_of_the_balance(base) -> None:  # type: ignore[no-untyped-def]
    moved = generate(dataclasses.replace(SPEC, exchange_transfer_share=0.5))
    tx = _legit(moved, "transactions")
    assert not _legit(base, "transactions")["address"].astype(str).str.endswith("-exchange").any()
    ex = tx[tx["address"].astype(str).str.endswith("-exchange")]
    assert ex["account_id"].nunique() >= 30
    for r in ex.head(30).itertuples(index=False):
        mine = tx[(tx["account_id"] == r.account_id) & (tx["ts"] < r.ts)]
        signed = mine["amount"].where(mine["kind"] == "deposit", -mine["amount"])
        bal = signed.sum()
        assert r.amount >= 0.59 * bal


def test_first_withdrawals_to_long_used_addresses(base) -> None:  # type: ignore[no-untyped-def]
    cut = pd.Timestamp(SPEC.window_start)

    def no_history(data) -> set[str]:  # type: ignore[no-untyped-def]
        tx = _legit(data, "transactions")
        wd = tx[tx["kind"] == "withdrawal"]
        before = set(wd.loc[wd["ts"] < cut, "account_id"])
        return set(wd.loc[wd["ts"] >= cut, "account_id"]) - before

    missing = generate(dataclasses.replace(SPEC, first_known_share=0.5))
    gained = no_history(missing) - no_history(base)
    assert len(gained) >= 20
    tx = _legit(missing, "transactions")
    own = tx[tx["account_id"].isin(gained) & (tx["kind"] == "withdrawal")]
    assert (own["ts"] >= cut).all()
    assert own.apply(lambda r: str(r["address"]).startswith(f"{r['account_id']}-addr"), axis=1).mean() > 0.9


def test_margin_episodes_are_scored(base) -> None:  # type: ignore[no-untyped-def]
    ep = base.margin_episodes
    pos = base.frames["positions"]
    assert len(ep) >= 1 and (ep["peak"] >= 0.8).all()
    for r in ep.itertuples(index=False):
        mine = pos[(pos["account_id"] == r.account_id) & (pos["ts"] >= r.start) & (pos["ts"] <= r.end)]
        assert mine["margin_ratio"].max() >= 0.8
    first = ep.iloc[0]
    warn = {"rule_id": "m", "kind": "margin_tier_2", "account_id": first["account_id"], "mode": "live",
            "ts": pd.Timestamp(first["start"]).isoformat(), "event_ids": ["P0000000"]}
    late = {**warn, "ts": (pd.Timestamp(first["end"]) + pd.Timedelta(hours=1)).isoformat()}
    assert score(base, [warn]).margin_warned == 1
    assert score(base, [late]).margin_warned == 0  # a warning after the episode is no warning
    assert score(base, [{**warn, "mode": "shadow"}]).margin_warned == 0
    assert score(base, []).margin_episodes == len(ep)


def test_seed_roles() -> None:
    assert seed_roles(11, None, None) == [(11, "")]
    assert seed_roles(11, "11", "5,23") == [(11, "tuning"), (5, "held-out"), (23, "held-out")]
    with pytest.raises(ConfigError, match="both a tuning and a held-out seed"):
        seed_roles(11, "5", "5,23")
    with pytest.raises(ConfigError, match="--held-out-seeds 'x'"):
        seed_roles(11, None, "x")


def test_eval_seed_split_and_plots(tmp_path: Path) -> None:
    md = tmp_path / "eval.md"
    res = CliRunner().invoke(
        eval_command,
        ["--accounts", "60", "--attacks", "3", "--days", "20", "--warmup-days", "10", "--tuning-seeds", "3",
         "--held-out-seeds", "4", "--knob", "salary_share=0.2", "--plots", str(tmp_path / "plots"),
         "--markdown", str(md)],
    )
    assert res.exit_code == 0, res.output
    assert "seed 3 (tuning seed)" in res.output and "seed 4 (held-out seed)" in res.output
    assert "| 3 | tuning |" in res.output and "| 4 | held-out |" in res.output
    assert "| mean | **held-out** |" in res.output
    assert "salary_share=0.2" in res.output.split("Seeds by role")[1]  # the table states the knobs
    assert "login_risk: precision / recall" in res.output
    for model in ("naive", "vpn", "targeted"):
        png = (tmp_path / "plots" / f"pr-{model}.png").read_bytes()
        assert png[:8] == PNG and len(png) > 5000
    text = md.read_text(encoding="utf-8")
    assert "Seeds by role" in text and text.count("vigil eval: seed") == 2
    assert "withdrawal_risk: precision / recall" in text
    bad = CliRunner().invoke(eval_command, ["--tuning-seeds", "3", "--held-out-seeds", "4", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "one run" in str(bad.exception)


def test_plots_need_a_risk_score(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - id: only-travel\n    description: x\n    owner: lab\n"
        "    detector: impossible_travel\n    severity: low\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(eval_command, ["--accounts", "60", "--attacks", "3", "--days", "20", "--rules", str(rules),
                                            "--plots", str(tmp_path / "p")])
    assert res.exit_code != 0 and "neither login_risk nor withdrawal_risk" in str(res.exception)


def test_robustness_changes_every_noise_knob_and_states_its_values() -> None:
    from vigil_lab.eval_cmd import robustness_steps
    from vigil_lab.evalgen import KNOBS, NOT_NOISE, STRESS

    noise = [k for k in KNOBS if k not in NOT_NOISE]
    plain = robustness_steps(EvalSpec())
    assert [k for k, _v, _to in plain] == noise  # every noise knob, margin_share left alone
    for k, v, to in plain:
        assert to == (min(1.0, 2 * v) if v > 0 else STRESS[k]) and to != v
    stressed = robustness_steps(dataclasses.replace(EvalSpec(), **STRESS))
    assert [k for k, _v, _to in stressed] == noise
    assert all(to == min(1.0, 2 * v) for _k, v, to in stressed)
