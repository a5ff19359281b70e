"""Warm start: profiles learned from history make long-used addresses and countries familiar.

``vigil profiles build`` stores them in the database (SQLite and PostgreSQL); ``vigil backtest
--warmup DAYS`` learns from the first days of the data and alerts only after them.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from alerts.store.db import make_engine, session_factory
from alerts.store.models import AlertRow, Profile
from tests.app.helpers import T0, iso, write_csv
from vigil.cli import main

HISTORY_DAYS = 40


def _login(acct: str, i: int, day: float, cc: str, city: str) -> dict[str, Any]:
    return {
        "event_id": f"{acct}-l{i}",
        "account_id": acct,
        "ts": iso(T0 + timedelta(days=day)),
        "success": "true",
        "country": cc,
        "city": city,
        "ip": f"10.{ord(cc[0])}.{ord(cc[1])}.{i % 3}",
        "device_id": f"dev-{acct}",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    }


def _wd(acct: str, i: int, day: float, address: str, amount: str = "200") -> dict[str, Any]:
    return {
        "event_id": f"{acct}-t{i}",
        "account_id": acct,
        "ts": iso(T0 + timedelta(days=day)),
        "kind": "withdrawal",
        "asset": "USDT",
        "amount": amount,
        "address": address,
    }


def _data(root: Path) -> tuple[Path, Path, Path]:
    """``history`` (days 0-39), ``recent`` (days 40-45) and ``full`` (both) directories.

    A1 lives in Korea, spent days 10-14 in Japan, and withdraws to two addresses of its own.  After
    day 40 it logs in from Korea, then Japan again, and withdraws to both addresses again: familiar
    with the history, new without it.  A2 logs in from Brazil for the first time ever after day 40:
    new either way (the warm start must not make everything familiar).
    """
    hist_l, hist_t, new_l, new_t = [], [], [], []
    n = 0
    for acct in ("A1", "A2"):
        for d in range(0, HISTORY_DAYS, 2):
            cc, city = ("JP", "Tokyo") if acct == "A1" and 10 <= d < 15 else ("KR", "Seoul")
            hist_l.append(_login(acct, n, d + 0.3, cc, city))
            n += 1
    hist_t += [_wd("A1", 1, 3, "0xAAA111"), _wd("A1", 2, 12, "0xBBB222"), _wd("A1", 3, 25, "0xAAA111")]
    hist_t += [_wd("A2", 4, 5, "0xCCC333"), _wd("A2", 5, 20, "0xCCC333")]
    for k, d in enumerate((40.2, 41.2, 42.2, 43.2)):
        new_l.append(_login("A1", 100 + k, d, "KR", "Seoul"))
        new_l.append(_login("A2", 200 + k, d, "KR", "Seoul"))
    new_l.append(_login("A1", 110, 44.2, "JP", "Tokyo"))
    new_l.append(_login("A2", 210, 44.2, "BR", "Sao Paulo"))
    new_t += [_wd("A1", 11, 44.3, "0xaaa111"), _wd("A1", 12, 45.3, "0xBBB222"), _wd("A2", 13, 45.3, "0xDDD444")]
    accts = [
        {"account_id": a, "locale": "ko", "email": f"{a.lower()}@example.com", "created_at": iso(T0)}
        for a in ("A1", "A2")
    ]
    dirs = []
    for name, logins, txs in (
        ("history", hist_l, hist_t),
        ("recent", new_l, new_t),
        ("full", hist_l + new_l, hist_t + new_t),
    ):
        d = root / name
        d.mkdir(parents=True)
        write_csv(d / "logins.csv", logins)
        write_csv(d / "transactions.csv", txs)
        write_csv(d / "accounts.csv", accts)
        dirs.append(d)
    return dirs[0], dirs[1], dirs[2]


def _pairs(alerts: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["rule_id"], a["account_id"]) for a in alerts}


def _backtest(data: Path, out: Path, *extra: str) -> tuple[str, list[dict[str, Any]]]:
    r = CliRunner().invoke(main, ["backtest", "--data", str(data), "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return r.output, list(csv.DictReader(out.open()))


def test_backtest_warmup_learns_without_alerting(tmp_path: Path) -> None:
    _, recent, full = _data(tmp_path)
    _, cold = _backtest(recent, tmp_path / "cold.csv")
    out, warm = _backtest(full, tmp_path / "warm.csv", "--warmup", str(HISTORY_DAYS))
    # from zero: Japan and the second address are new to A1
    assert {("login-new-country", "A1"), ("withdrawal-new-address", "A1")} <= _pairs(cold)
    # after a 40-day warm-up they are the account's own; Brazil and A2's new address stay new
    assert ("login-new-country", "A1") not in _pairs(warm)
    assert ("withdrawal-new-address", "A1") not in _pairs(warm)
    assert {("login-new-country", "A2"), ("withdrawal-new-address", "A2")} <= _pairs(warm)
    # nothing of the warm-up period alerts, and the report says how long it was
    cutoff = T0 + timedelta(days=0.3 + HISTORY_DAYS)  # 40 days from the first event
    assert all(a["ts"] >= cutoff.isoformat() for a in warm)
    assert f"warm-up: {HISTORY_DAYS} day(s), until {cutoff.isoformat()}" in out
    # the 45 history events and the two logins of day 40.2 (before the cutoff) only taught the profiles
    assert "47 event(s) taught the profiles only (no findings, no alerts)" in out
    assert "rows read: 58 (logins 50, transactions 8)" in out  # every row is still counted as read


def test_profiles_build_then_scan(tmp_path: Path, db_url: str) -> None:
    history, recent, _ = _data(tmp_path)
    runner = CliRunner()

    def scan(url: str) -> set[tuple[str, str]]:
        r = runner.invoke(main, ["--db", url, "import", str(recent)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(main, ["--db", url, "scan", "--once"])
        assert r.exit_code == 0, r.output
        eng = make_engine(url)
        try:
            with session_factory(eng)() as s:
                return {(a.rule_id, a.account_id) for a in s.scalars(select(AlertRow))}
        finally:
            eng.dispose()

    r = runner.invoke(main, ["--db", db_url, "profiles", "build", "--data", str(history)])
    assert r.exit_code == 0, r.output
    assert "history read: 45 rows (logins 40, transactions 5)" in r.output
    assert "accounts learned: 2" in r.output and "nothing was alerted" in r.output
    eng = make_engine(db_url)
    with session_factory(eng)() as s:
        assert s.scalars(select(AlertRow)).first() is None  # learning alerts nobody
        dets = {p.detector for p in s.scalars(select(Profile).where(Profile.account_id == "A1"))}
        addresses = s.scalars(
            select(Profile.state).where(Profile.account_id == "A1", Profile.detector == "new_address")
        ).one()
    eng.dispose()
    assert {"new_location", "new_address", "login_risk"} <= dets
    assert set(addresses["a"]) == {"0xaaa111", "0xbbb222"}  # EVM addresses compare in lower case
    warm = scan(db_url)
    assert ("login-new-country", "A1") not in warm and ("withdrawal-new-address", "A1") not in warm
    assert {("login-new-country", "A2"), ("withdrawal-new-address", "A2")} <= warm

    # the same recent records on an empty database: A1's Japan and second address are new
    other = f"sqlite:///{tmp_path / 'cold.db'}"
    cold = scan(other)
    assert {("login-new-country", "A1"), ("withdrawal-new-address", "A1")} <= cold


def test_profiles_build_reports_bad_input(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["--db", f"sqlite:///{tmp_path / 'v.db'}", "profiles", "build", "--data", str(tmp_path / "nope")]
    )
    assert r.exit_code != 0 and "data directory not found" in r.output and "Traceback" not in r.output
