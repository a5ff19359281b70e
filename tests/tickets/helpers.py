"""Data and wiring for the ticket tests: one account with several alerts in every category."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.app.helpers import T0, iso, write_csv

RULES = Path(__file__).with_name("rules")


def busy_account_dir(path: Path) -> Path:
    """Account B1 (ko): a learning period, then two new countries, three large withdrawals and two
    margin tiers; account B2 (en, vip tier): one new country.  Every event is hours apart."""
    path.mkdir(parents=True, exist_ok=True)
    accounts = [
        {"account_id": "B1", "locale": "ko", "timezone": "Asia/Seoul", "email": "b1@example.com",
         "phone": "+821055500001", "tier": "regular"},
        {"account_id": "B2", "locale": "en", "timezone": "UTC", "email": "b2@example.com",
         "phone": "+821055500002", "tier": "vip"},
    ]
    logins: list[dict[str, Any]] = []
    txs: list[dict[str, Any]] = []
    for acct, cc, city in (("B1", "KR", "Seoul"), ("B2", "US", "New York")):
        for i in range(5):
            logins.append({"event_id": f"{acct}-l{i}", "account_id": acct, "ts": iso(T0 + timedelta(days=i)),
                           "success": "true", "country": cc, "city": city, "ip": f"10.0.0.{i}",
                           "device_id": f"dev-{acct}"})
            txs.append({"event_id": f"{acct}-t{i}", "account_id": acct,
                        "ts": iso(T0 + timedelta(days=i, hours=1)), "kind": "withdrawal", "asset": "USDT",
                        "amount": "100"})
    logins += [
        {"event_id": "B1-br", "account_id": "B1", "ts": iso(T0 + timedelta(days=6)), "success": "true",
         "country": "BR", "city": "Sao Paulo", "ip": "200.1.1.1", "device_id": "evil"},
        {"event_id": "B1-de", "account_id": "B1", "ts": iso(T0 + timedelta(days=6, hours=5)),
         "success": "true", "country": "DE", "city": "Berlin", "ip": "80.1.1.1", "device_id": "evil"},
        {"event_id": "B2-br", "account_id": "B2", "ts": iso(T0 + timedelta(days=6)), "success": "true",
         "country": "BR", "city": "Sao Paulo", "ip": "200.1.1.2", "device_id": "evil2"},
    ]
    for n, h in enumerate((2, 4, 7)):
        txs.append({"event_id": f"B1-big{n}", "account_id": "B1", "ts": iso(T0 + timedelta(days=6, hours=h)),
                    "kind": "withdrawal", "asset": "USDT", "amount": "25000", "address": f"0xattacker{n}"})
    positions = [
        {"event_id": "B1-p1", "account_id": "B1", "ts": iso(T0 + timedelta(days=2)), "symbol": "BTCUSDT",
         "leverage": "10", "margin_ratio": "0.5"},
        {"event_id": "B1-p2", "account_id": "B1", "ts": iso(T0 + timedelta(days=3)), "symbol": "BTCUSDT",
         "leverage": "10", "margin_ratio": "0.75"},
        {"event_id": "B1-p3", "account_id": "B1", "ts": iso(T0 + timedelta(days=4)), "symbol": "BTCUSDT",
         "leverage": "10", "margin_ratio": "0.93"},
    ]
    write_csv(path / "accounts.csv", accounts)
    write_csv(path / "logins.csv", logins)
    write_csv(path / "transactions.csv", txs)
    write_csv(path / "positions.csv", positions)
    return path
