"""Generated data for the detector conformance suite: five tables, normal behaviour plus one
planted incident per detector kind, deterministic per seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from detectors.contract import TABLES

START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 24
N_ACCOUNTS = 13
PROFILE_LIMIT_BYTES = 100_000
TS_COLUMNS = {
    "logins": "ts",
    "transactions": "ts",
    "positions": "ts",
    "security_events": "ts",
    "accounts": "created_at",
}

CITIES = [  # country, city, lat, lon, asn, ip prefix, timezone, locale
    ("KR", "Seoul", 37.5665, 126.9780, 4766, "211.234", "Asia/Seoul", "ko"),
    ("JP", "Tokyo", 35.6762, 139.6503, 2516, "126.72", "Asia/Tokyo", "ja"),
    ("US", "New York", 40.7128, -74.0060, 7922, "73.12", "America/New_York", "en"),
    ("GB", "London", 51.5072, -0.1276, 2856, "86.140", "Europe/London", "en"),
    ("DE", "Berlin", 52.5200, 13.4050, 3320, "84.56", "Europe/Berlin", "en"),
    ("BR", "Sao Paulo", -23.5505, -46.6333, 28573, "177.32", "America/Sao_Paulo", "en"),
    ("TW", "Taipei", 25.0330, 121.5654, 3462, "114.32", "Asia/Taipei", "zh-TW"),
    ("CN", "Shanghai", 31.2304, 121.4737, 4812, "101.80", "Asia/Shanghai", "zh-CN"),
]
ATTACKER = ("NG", "Lagos", 6.5244, 3.3792, 36873, "105.112")
STUFFER_IP, STUFFER_ASN = "45.155.205.10", 14061
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 "
    "Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1",
]
ATTACKER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"


# --------------------------------------------------------------------------------------------
# the generator: five tables, normal behaviour plus one planted incident of each kind
# --------------------------------------------------------------------------------------------
class _Gen:
    def __init__(self, seed: int, n_accounts: int, prefix: str) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n_accounts
        self.prefix = prefix
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self.counter = 0

    def eid(self, kind: str) -> str:
        self.counter += 1
        return f"{self.prefix}{kind}{self.counter:06d}"

    def at(self, day: float, hours: float = 0.0) -> datetime:
        return START + timedelta(days=day, hours=hours, seconds=int(self.rng.integers(0, 3600)))

    def login(
        self,
        acct: str,
        ts: datetime,
        ok: bool,
        place: tuple[Any, ...],
        ip: str,
        device: str,
        ua: str,
        anon: bool = False,
    ) -> None:
        self.rows["logins"].append(
            {
                "event_id": self.eid("L"),
                "account_id": acct,
                "ts": ts,
                "success": ok,
                "ip": ip,
                "country": place[0],
                "city": place[1],
                "lat": place[2],
                "lon": place[3],
                "asn": place[4],
                "device_id": device,
                "user_agent": ua,
                "channel": "web",
                "is_anonymous_ip": anon,
            }
        )

    def tx(
        self,
        acct: str,
        ts: datetime,
        kind: str,
        amount: float,
        asset: str = "USDT",
        usd: float | None = None,
        address: str | None = None,
        symbol: str | None = None,
        side: str | None = None,
    ) -> None:
        self.rows["transactions"].append(
            {
                "event_id": self.eid("T"),
                "account_id": acct,
                "ts": ts,
                "kind": kind,
                "asset": asset,
                "amount": round(amount, 6),
                "amount_usd": round(usd if usd is not None else amount, 2),
                "address": address,
                "network": "ETH" if address else None,
                "symbol": symbol,
                "side": side,
            }
        )

    def position(self, acct: str, ts: datetime, lev: float, mr: float, symbol: str = "BTCUSDT") -> None:
        notional = float(self.rng.uniform(1_000, 20_000))
        self.rows["positions"].append(
            {
                "event_id": self.eid("P"),
                "account_id": acct,
                "ts": ts,
                "symbol": symbol,
                "leverage": lev,
                "margin_ratio": mr,
                "notional_usd": notional,
                "unrealized_pnl_usd": float(self.rng.normal(0, 200)),
                "liquidation_price": 40_000.0,
                "mark_price": 60_000.0,
            }
        )

    def security(self, acct: str, ts: datetime, kind: str, ip: str) -> None:
        self.rows["security_events"].append(
            {
                "event_id": self.eid("S"),
                "account_id": acct,
                "ts": ts,
                "kind": kind,
                "ip": ip,
                "device_id": None,
            }
        )


def make_data(seed: int, n_accounts: int = N_ACCOUNTS, prefix: str = "") -> dict[str, pd.DataFrame]:
    g = _Gen(seed, n_accounts, prefix)
    rng = g.rng
    accts = [f"{prefix}acct{i:02d}" for i in range(n_accounts)]
    homes = [CITIES[int(rng.integers(0, len(CITIES)))] for _ in accts]
    for i, (acct, home) in enumerate(zip(accts, homes, strict=True)):
        begins = DAYS - 7 if i == 6 else 0  # account 6 is brand new: cold start
        g.rows["accounts"].append(
            {
                "account_id": acct,
                "created_at": START + timedelta(days=begins - (0 if i == 6 else 200)),
                "locale": home[7],
                "timezone": home[6],
                "phone": f"+8210{i:08d}",
                "email": f"{acct}@example.com",
                "push_token": f"tok-{acct}",
                "tier": "retail",
                "anti_phishing_code": f"code{i}",
                "status": "active",
            }
        )
        subnet = f"{home[5]}.{10 + i}"
        devices = [f"{acct}-pc", f"{acct}-phone"]
        addresses = [f"0x{prefix.encode().hex()}{i:02x}{k:02x}" + "ab" * 18 for k in range(2)]
        for day in range(begins, DAYS):
            for _ in range(int(rng.integers(1, 3))):
                ts = g.at(day, float(rng.uniform(7, 22)))
                d = int(rng.random() < 0.15)
                if rng.random() < 0.04:
                    g.login(
                        acct, ts - timedelta(minutes=1), False, home, f"{subnet}.{d + 2}", devices[d], UAS[d]
                    )
                g.login(acct, ts, True, home, f"{subnet}.{d + 2}", devices[d], UAS[d])
            for _ in range(int(rng.integers(1, 4))):
                amt = float(rng.uniform(50, 500))
                g.tx(
                    acct,
                    g.at(day, float(rng.uniform(8, 20))),
                    "trade",
                    amt,
                    symbol="BTCUSDT",
                    side="buy" if rng.random() < 0.5 else "sell",
                )
            if (day - begins) % 7 == 0:
                g.tx(acct, g.at(day, 7), "deposit", float(rng.uniform(5_000, 20_000)))
                btc = float(rng.uniform(0.01, 0.1))
                g.tx(acct, g.at(day, 7.5), "deposit", btc, asset="BTC", usd=btc * 60_000)
            if (day - begins) % 3 == 1 and i != 6:
                g.tx(
                    acct,
                    g.at(day, 12),
                    "withdrawal",
                    float(rng.uniform(100, 600)),
                    address=addresses[int(rng.random() < 0.3)],
                )
            if day % 2 == 0:
                g.position(acct, g.at(day, 9), float(rng.uniform(2, 8)), float(rng.uniform(0.1, 0.4)))
        _incidents(g, i, acct, home, subnet, devices, addresses)
    if n_accounts >= 13:
        _credential_stuffing(g, accts)
    frames = {t: pd.DataFrame(rows, columns=list(TABLES[t].names)) for t, rows in g.rows.items()}
    return frames


def _incidents(
    g: _Gen, i: int, acct: str, home: tuple[Any, ...], subnet: str, devices: list[str], addresses: list[str]
) -> None:
    rng = g.rng
    if i == 0:  # takeover: home login, attacker login abroad, security changes, drain to a new address
        t0 = g.at(DAYS - 5, 10)
        g.login(acct, t0, True, home, f"{subnet}.2", devices[0], UAS[0])
        t1 = t0 + timedelta(minutes=95)
        g.login(
            acct,
            t1,
            True,
            ATTACKER,
            f"{ATTACKER[5]}.7.{int(rng.integers(2, 250))}",
            "atk-device",
            ATTACKER_UA,
        )
        g.security(acct, t1 + timedelta(minutes=8), "password_change", f"{ATTACKER[5]}.7.9")
        g.security(acct, t1 + timedelta(minutes=11), "2fa_disabled", f"{ATTACKER[5]}.7.9")
        thief = "0x" + "de" * 20
        g.tx(acct, t1 + timedelta(minutes=20), "withdrawal", 12_500.0, address=thief)
        for k in range(5):
            g.tx(
                acct,
                t1 + timedelta(minutes=35 + 12 * k),
                "withdrawal",
                float(rng.uniform(2_500, 3_500)),
                address=thief,
            )
    elif i == 1:  # failed-login burst, then a success from the guessing IP
        t0 = g.at(DAYS - 4, 3)
        for k in range(14):
            g.login(
                acct, t0 + timedelta(minutes=2 * k), False, ATTACKER, f"{ATTACKER[5]}.9.9", "bot", ATTACKER_UA
            )
        g.login(acct, t0 + timedelta(minutes=31), True, ATTACKER, f"{ATTACKER[5]}.9.9", "bot", ATTACKER_UA)
    elif i == 3:  # trading spike
        t0 = g.at(DAYS - 2, 14)
        for k in range(45):
            g.tx(
                acct,
                t0 + timedelta(seconds=50 * k),
                "trade",
                float(rng.uniform(50, 500)),
                symbol="ETHUSDT",
                side="buy" if k % 2 else "sell",
            )
    elif i == 4:  # margin ratio climbing towards liquidation, oscillating around tiers; leverage rising
        t0 = g.at(DAYS - 3, 1)
        path = [
            (5, 0.5),
            (8, 0.66),
            (12, 0.72),
            (12, 0.69),
            (15, 0.71),
            (25, 0.78),
            (40, 0.82),
            (45, 0.79),
            (60, 0.84),
            (55, 0.91),
            (70, 0.95),
            (65, 0.93),
        ]
        for k, (lev, mr) in enumerate(path):
            g.position(acct, t0 + timedelta(minutes=40 * k), float(lev), mr, symbol="ETHUSDT")
    elif i == 5:  # a withdrawal ten times the usual size, to a known address
        g.tx(acct, g.at(DAYS - 3, 15), "withdrawal", 4_200.0, address=addresses[0])
    elif i == 6:  # brand-new account: deposit, then most of it out
        g.tx(acct, g.at(DAYS - 6, 16), "withdrawal", 4_000.0, address="0x" + "77" * 20)
    elif i == 7:  # legitimate travel at a plausible speed (a 12 h trip)
        dest = CITIES[(CITIES.index(home) + 3) % len(CITIES)] if home in CITIES else CITIES[0]
        g.login(acct, g.at(DAYS - 6, 23), True, dest, f"{dest[5]}.200.4", devices[1], UAS[2])
    elif i == 8:
        g.security(acct, g.at(5, 9), "api_key_created", f"{subnet}.2")
    elif i == 9:
        g.security(acct, g.at(10, 6), "password_change", f"{subnet}.2")


def _credential_stuffing(g: _Gen, accts: list[str]) -> None:
    t0 = g.at(DAYS - 3, 2)
    place = ("NL", "Amsterdam", 52.3676, 4.9041, STUFFER_ASN, "45.155")
    for k, acct in enumerate(accts[:12]):
        g.login(acct, t0 + timedelta(minutes=2 * k), False, place, STUFFER_IP, "stuffer", ATTACKER_UA)
    g.login(accts[2], t0 + timedelta(minutes=30), True, place, STUFFER_IP, "stuffer", ATTACKER_UA)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
