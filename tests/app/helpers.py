"""Small hand-built data sets and app wiring for the application tests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vigil.bootstrap import App, bootstrap
from vigil.settings import load_settings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def small_dir(path: Path, *, bad_row: bool = True, accounts: int = 3) -> Path:
    """Per account: 5 logins at home, then one abroad (new country) and a large withdrawal."""
    path.mkdir(parents=True, exist_ok=True)
    logins, txs, pos, accts = [], [], [], []
    homes = [("KR", "Seoul", "ko", "Asia/Seoul"), ("JP", "Tokyo", "ja", "Asia/Tokyo"),
             ("US", "New York", "en", "America/New_York"), ("CN", "Shanghai", "zh-CN", "Asia/Shanghai"),
             ("TW", "Taipei", "zh-TW", "Asia/Taipei")]
    for a in range(accounts):
        acct = f"A{a + 1}"
        cc, city, loc, tz = homes[a % len(homes)]
        accts.append({"account_id": acct, "locale": loc, "timezone": tz, "email": f"{acct.lower()}@example.com",
                      "phone": f"+8210555{a:04d}", "anti_phishing_code": f"APC{a}"})
        for i in range(5):
            logins.append({"event_id": f"{acct}-l{i}", "account_id": acct, "ts": iso(T0 + timedelta(days=i)),
                           "success": "true", "country": cc, "city": city, "ip": f"10.0.{a}.{i}",
                           "device_id": f"dev-{acct}"})
            txs.append({"event_id": f"{acct}-t{i}", "account_id": acct, "ts": iso(T0 + timedelta(days=i, hours=1)),
                        "kind": "withdrawal", "asset": "USDT", "amount": "100"})
        logins.append({"event_id": f"{acct}-l9", "account_id": acct, "ts": iso(T0 + timedelta(days=6)),
                       "success": "true", "country": "BR", "city": "Sao Paulo", "ip": "200.1.1.1",
                       "device_id": "evil"})
        txs.append({"event_id": f"{acct}-t9", "account_id": acct, "ts": iso(T0 + timedelta(days=6, hours=1)),
                    "kind": "withdrawal", "asset": "USDT", "amount": "25000", "address": "0xattacker"})
        pos.append({"event_id": f"{acct}-p1", "account_id": acct, "ts": iso(T0 + timedelta(days=2)),
                    "symbol": "BTCUSDT", "leverage": "10", "margin_ratio": "0.5"})
        pos.append({"event_id": f"{acct}-p2", "account_id": acct, "ts": iso(T0 + timedelta(days=3)),
                    "symbol": "BTCUSDT", "leverage": "20", "margin_ratio": "0.92"})
    if bad_row:
        logins.append({"event_id": "bad-1", "account_id": "A1", "ts": "yesterday-ish", "success": "true",
                       "country": "KR"})
        txs.append({"event_id": "bad-2", "account_id": "A1", "ts": iso(T0), "kind": "withdraw",
                    "asset": "USDT", "amount": "5"})
    write_csv(path / "accounts.csv", accts)
    write_csv(path / "logins.csv", logins)
    write_csv(path / "transactions.csv", txs)
    write_csv(path / "positions.csv", pos)
    return path


class Clock:
    def __init__(self, start: datetime = T0 + timedelta(days=7)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def make_app(db_url: str, clock: Callable[[], datetime] | None = None, **overrides: Any) -> App:
    settings = load_settings(None, database_url=db_url, **overrides)
    return bootstrap(settings, clock=clock or Clock())


def wait_until(pred: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds pass (for tests that run real processes)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def start_daemon(tmp_path: Path, db_url: str, extra: str = "") -> Any:
    """``vigil run`` in a process of its own, every job each second (``extra``: more settings YAML)."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"database_url: {db_url}\n{extra}daemon: {{scan_every_seconds: 1, deliver_every_seconds: 1, "
                   "escalate_every_seconds: 1, rules_reload_seconds: 1}\n")
    return subprocess.Popen([sys.executable, "-m", "vigil.cli", "--config", str(cfg), "run"],
                            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_daemon(proc: Any) -> str:
    """SIGTERM, wait for a graceful exit (status 0), and return what the daemon printed."""
    import signal

    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    return str(out)
