"""Seeded synthetic exchange data for the demo, the tests and the benchmarks.

:func:`generate` builds the five canonical tables of ``detectors/contract.py`` for accounts in
several countries and locales behaving normally -- logins from home, the odd trip abroad at a
plausible speed, deposits, trades, modest withdrawals, moderately levered positions -- and plants
the incidents a new user must see caught: account takeovers (a login from a foreign country on a
new device, a security change, then a withdrawal to a new address), large withdrawals, leverage
spikes and margin ratios climbing towards liquidation.  :func:`generate_with_labels` also says
which events were planted (and which trips are benign travel), so tests and backtests can count
recall and noise.  :func:`big` is the vectorised variant for benchmarks: a million rows a second.

Everything is a function of the arguments: the same seed gives the same frames and event ids.
Phone numbers use ranges reserved for fiction where a country has one and e-mail addresses the
reserved ``example.*`` domains, so a demo never reaches a real person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from detectors.contract import TABLES

Frames = dict[str, pd.DataFrame]
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class Incident(TypedDict):
    kind: str  # takeover | large_withdrawal | leverage_spike | margin_call | travel
    account_id: str
    event_ids: list[str]
    ts: str
    expect: list[str]  # detectors that should fire on these events
    note: str


class Labels(TypedDict):
    seed: int
    planted: list[Incident]
    benign: list[Incident]


from vigil_lab.synth_places import (  # noqa: E402  (kept importable from vigil_lab.synth)
    ATTACKERS,
    CHANNEL,
    COUNTRIES,
    DEFAULT_START,
    GIVEN,
    NETWORK,
    PREFIX,
    PRICES,
    TRAVEL,
    UA,
    City,
    Country,
)


def _digits(rng: np.random.Generator, template: str) -> str:
    return "".join(str(rng.integers(10)) if ch == "#" else ch for ch in template)


def _chars(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))


def address(rng: np.random.Generator, asset: str) -> str:
    """A plausible-looking (not checksummed) address on the asset's network."""
    net = NETWORK[asset]
    if net == "BTC":
        return "bc1q" + _chars(rng, "qpzry9x8gf2tvdw0s3jn54khce6mua7l", 38)
    if net == "ETH":
        return "0x" + _chars(rng, "0123456789abcdef", 40)
    return {"TRX": "T", "XRP": "r"}.get(net, "") + _chars(rng, _B58, 33 if net in ("TRX", "XRP") else 44)


@dataclass
class _Person:
    account_id: str
    country: Country
    city: City
    tier: str
    devices: list[tuple[str, str]]  # (device_id, kind)
    home_ip: str
    mobile_ips: list[tuple[int, str]]  # (asn, ip): the carrier's NAT addresses this phone gets
    home_asn: int
    rates: dict[str, float]
    typical_usd: float
    assets: list[str]
    targets: list[tuple[str, str]]  # (asset, address) the owner withdraws to
    symbols: list[str]
    travel: tuple[int, int, City, tuple[int, int, int]] | None = None  # first day, days, city, isp
    logins_ok: list[datetime] = field(default_factory=list)
    setup: list[tuple[int, int]] = field(default_factory=list)  # (device, network) pairs still unused
    withdrawals: list[tuple[datetime, float]] = field(default_factory=list)
    position_rows: dict[str, list[int]] = field(default_factory=dict)


class _Builder:
    """Accumulates rows per table; event ids are assigned by time order at the end."""

    def __init__(self, rng: np.random.Generator, start: datetime, days: int) -> None:
        self.rng, self.start, self.days = rng, start, days
        self.end = start + timedelta(days=days)
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in PREFIX}
        self.hours = days * 24 + 48
        steps = rng.normal(0.0, 0.006, (len(PRICES), self.hours))  # ~3 % daily volatility
        self.price = {a: p * np.exp(np.cumsum(s)) if p != 1.0 else np.ones(self.hours)
                      for (a, p), s in zip(PRICES.items(), steps, strict=True)}

    def at(self, tz: str, day: int, hour: float) -> datetime:
        local = datetime.combine(self.start.date() + timedelta(days=day), datetime.min.time(), ZoneInfo(tz))
        return (local + timedelta(seconds=round(hour * 3600))).astimezone(UTC)

    def px(self, asset: str, ts: datetime) -> float:
        i = min(max(int((ts - self.start).total_seconds() // 3600), 0), self.hours - 1)
        return float(self.price[asset][i])

    def add(self, table: str, **row: Any) -> int:
        if not self.start <= row["ts"] < self.end:
            return -1
        self.rows[table].append(row)
        return len(self.rows[table]) - 1

    def login(self, p: _Person, ts: datetime, dev: tuple[str, str], ip: str, asn: int, city: City,
              ok: bool = True, anonymous: bool = False) -> int:
        i = self.add("logins", account_id=p.account_id, ts=ts, success=ok, ip=ip, country=city.country,
                     city=city.name, lat=city.lat, lon=city.lon, asn=asn, device_id=dev[0],
                     user_agent=UA[dev[1]], channel=CHANNEL[dev[1]], is_anonymous_ip=anonymous)
        if ok and i >= 0 and city.country == p.country.code:
            p.logins_ok.append(ts)
        return i

    def tx(self, p: _Person, ts: datetime, kind: str, asset: str, usd: float, **extra: Any) -> int:
        amount = round(usd / self.px(asset, ts), 8)
        i = self.add("transactions", account_id=p.account_id, ts=ts, kind=kind, asset=asset, amount=amount,
                     amount_usd=round(usd, 2), network=extra.pop("network", NETWORK[asset]), **extra)
        if kind == "withdrawal" and i >= 0:
            p.withdrawals.append((ts, round(usd, 2)))
        return i


def _person(rng: np.random.Generator, i: int) -> _Person:
    codes = list(COUNTRIES)
    weights = np.array([COUNTRIES[c].weight for c in codes])
    country = COUNTRIES[codes[rng.choice(len(codes), p=weights / weights.sum())]]
    city = country.cities[min(int(rng.geometric(0.55)) - 1, len(country.cities) - 1)]
    tier = str(rng.choice(["retail", "vip", "institutional"], p=[0.85, 0.12, 0.03]))
    kinds = ["ios" if rng.random() < 0.5 else "android"] + (["desktop"] if rng.random() < 0.6 else [])
    kinds += ["api"] if tier == "institutional" else []
    asn, a, b = country.isps[rng.integers(len(country.isps))]
    masn, ma, mb = country.isps[rng.integers(len(country.isps))]
    assets = ["USDT", *rng.choice(["BTC", "ETH", "SOL", "XRP"], size=int(rng.integers(1, 4)), replace=False)]
    scale = {"retail": 400.0, "vip": 2500.0, "institutional": 3000.0}[tier]
    carrier = f"{ma}.{mb}.{rng.integers(256)}"
    person = _Person(
        account_id=f"acct-{i + 1:05d}", country=country, city=city, tier=tier,
        devices=[(f"dev-{_chars(rng, '0123456789abcdef', 12)}", k) for k in kinds],
        home_ip=f"{a}.{b}.{rng.integers(256)}.{rng.integers(1, 255)}", home_asn=asn,
        mobile_ips=[(masn, f"{carrier}.{rng.integers(1, 255)}") for _ in range(2)],
        rates={"login": float(rng.uniform(0.6, 3.5)), "trade": float(rng.exponential(2.0)),
               "deposit": float(rng.uniform(0.1, 0.4)), "withdrawal": float(rng.uniform(0.08, 0.25))},
        typical_usd=float(np.clip(rng.lognormal(np.log(scale), 0.7), 30, 5000)),
        assets=[str(x) for x in assets],
        # one wallet: with no history before day 0, a second one would be "new" the first time
        targets=[(str(assets[0]), address(rng, str(assets[0])))],
        symbols=[f"{s}USDT" for s in rng.choice(["BTC", "ETH", "SOL"], int(rng.integers(1, 3)), False)]
        if rng.random() < {"retail": 0.3, "vip": 0.6, "institutional": 0.5}[tier] else [],
    )
    # <= 5 (device, network) pairs: all seen within the login detectors' learning period
    person.setup = [(d, -1) for d in range(len(kinds))] + [(0, 0), (0, 1)]
    return person


def _account_row(rng: np.random.Generator, p: _Person, start: datetime) -> dict[str, Any]:
    given = rng.choice(GIVEN[p.country.locale].split())
    family = rng.choice(p.country.families)
    return {
        "account_id": p.account_id,
        "created_at": start - timedelta(days=int(rng.integers(40, 1500)), seconds=int(rng.integers(86400))),
        "locale": p.country.locale, "timezone": p.city.tz,
        "phone": _digits(rng, str(rng.choice(p.country.phones))),
        "email": f"{given}.{family}{rng.integers(1, 99)}@example.{rng.choice(['com', 'net', 'org'])}",
        "push_token": (_chars(rng, _B58, 22) + ":APA91b" + _chars(rng, _B58 + "-_", 134))
        if p.devices[0][1] in ("ios", "android") and rng.random() < 0.8 else None,
        "tier": p.tier, "anti_phishing_code": _chars(rng, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 6)
        if rng.random() < 0.4 else None,
        "status": "active",
    }


def _normal(b: _Builder, p: _Person) -> list[int]:
    """One account's ordinary month; returns the login rows of its trip abroad, if any."""
    rng, trip_rows = b.rng, []
    if b.days >= 14 and rng.random() < 0.05:
        dest = COUNTRIES[str(rng.choice(TRAVEL[p.country.code].split()))]
        p.travel = (int(rng.integers(6, b.days - 7)), int(rng.integers(2, 6)),
                    dest.cities[min(int(rng.geometric(0.6)) - 1, len(dest.cities) - 1)],
                    dest.isps[rng.integers(len(dest.isps))])
    funding = b.at(p.city.tz, int(rng.integers(0, 2)), float(rng.uniform(9, 20)))
    funding = max(funding, b.start + timedelta(hours=1))
    b.tx(p, funding, "deposit", "USDT", p.typical_usd * float(rng.uniform(4, 10)))  # the month's balance
    for day in range(b.days):
        city, tz, away = p.city, p.city.tz, None
        if p.travel is not None:
            first, n, tcity, isp = p.travel
            if day in (first, first + n + 1):
                continue  # flying: no logins on the way out and back
            if first < day <= first + n:
                city, tz, away = tcity, tcity.tz, isp
        peaks = rng.choice([8.0, 12.5, 20.0, 22.0], int(rng.poisson(p.rates["login"])))
        for h in np.sort(np.clip(peaks + rng.normal(0, 1.0, len(peaks)), 6.5, 23.9)):
            ts = b.at(tz, day, float(h))
            pick = 0 if away or rng.random() < 0.5 else int(rng.integers(len(p.devices)))
            net = int(rng.integers(len(p.mobile_ips))) if pick == 0 and rng.random() < 0.6 else -1
            if p.setup and away is None and ts >= b.start:  # first logins: every device and network once
                pick, net = p.setup.pop(0)
            dev = p.devices[pick]
            if away is not None:
                ip, asn = f"{away[1]}.{away[2]}.{rng.integers(256)}.{rng.integers(1, 255)}", away[0]
            elif net >= 0:
                asn, ip = p.mobile_ips[net]
            else:
                ip, asn = p.home_ip, p.home_asn
            if rng.random() < 0.025:  # a typo, then the right password
                b.login(p, ts, dev, ip, asn, city, ok=False)
                ts += timedelta(seconds=int(rng.integers(20, 180)))
            i = b.login(p, ts, dev, ip, asn, city)
            if away is not None and i >= 0:
                trip_rows.append(i)
        for kind in ("deposit", "withdrawal", "trade"):
            for _ in range(int(rng.poisson(p.rates[kind]))):
                ts = b.at(p.city.tz, day, float(rng.uniform(7, 23.5)))
                if kind == "trade":
                    asset = str(rng.choice([a for a in p.assets if a != "USDT"]))
                    usd = p.typical_usd * float(rng.lognormal(0, 0.5))
                    side = str(rng.choice(["buy", "sell"]))
                    b.tx(p, ts, "trade", asset, usd, symbol=f"{asset}USDT", side=side, network=None)
                elif kind == "deposit":
                    usd = p.typical_usd * float(rng.uniform(0.8, 3))
                    b.tx(p, ts, "deposit", str(rng.choice(p.assets)), usd)
                else:  # modest, to the owner's wallet: 0.6-1.6x the usual, below 3,000 USD
                    n_wd = len(p.withdrawals)  # each wallet once first, then any of them
                    asset, to = p.targets[n_wd if n_wd < len(p.targets) else rng.integers(len(p.targets))]
                    usd = min(p.typical_usd, 1800.0) * float(np.clip(rng.lognormal(0, 0.25), 0.6, 1.6))
                    b.tx(p, ts, "withdrawal", asset, usd, address=to)
        if rng.random() < 0.01:
            kind = str(rng.choice(["transfer_in", "transfer_out"]))
            ts = b.at(p.city.tz, day, float(rng.uniform(9, 22)))
            b.tx(p, ts, kind, "USDT", p.typical_usd * 0.5, network=None)
    api_keys = 0.5 if p.tier == "institutional" else 0.03
    for kind, prob in (("password_change", 0.05), ("api_key_created", api_keys),
                       ("anti_phishing_change", 0.02)):
        if rng.random() < prob:
            for _ in range(5):  # an owner's own change, rarely right before one of their withdrawals
                ts = b.at(p.city.tz, int(rng.integers(b.days)), float(rng.uniform(9, 22)))
                if not any(ts <= w < ts + timedelta(days=1) for w, _ in p.withdrawals):
                    break
            b.add("security_events", account_id=p.account_id, ts=ts, kind=kind, ip=p.home_ip,
                  device_id=p.devices[-1][0])
    for sym in p.symbols:
        _positions(b, p, sym)
    return trip_rows


def _positions(b: _Builder, p: _Person, sym: str) -> None:
    """A perpetual position snapshotted every 4 hours; leverage <= 25, margin ratio < 0.6."""
    rng, asset = b.rng, sym.removesuffix("USDT")
    lev = float(rng.choice([2, 3, 5, 10, 10, 20, 25]))
    side = 1.0 if rng.random() < 0.7 else -1.0
    opened = b.start + timedelta(hours=int(rng.integers(0, 72)))
    entry = b.px(asset, opened)
    qty = p.typical_usd * float(rng.uniform(2, 10)) / entry
    mr = base = float(rng.uniform(0.08, 0.35))
    rows = p.position_rows.setdefault(sym, [])
    for k in range(int((b.end - opened).total_seconds() // 14400)):
        ts = opened + timedelta(hours=4 * k, seconds=int(rng.integers(0, 60)))
        mark = b.px(asset, ts)
        mr = float(np.clip(base + 0.7 * (mr - base) + rng.normal(0, 0.03), 0.03, 0.55))
        rows.append(b.add("positions", account_id=p.account_id, ts=ts, symbol=sym, leverage=lev,
                          margin_ratio=round(mr, 4), notional_usd=round(qty * mark, 2),
                          unrealized_pnl_usd=round(side * qty * (mark - entry), 2),
                          liquidation_price=round(entry * (1 - side * 0.9 / lev), 2),
                          mark_price=round(mark, 2)))


Planted = tuple[str, _Person, list[tuple[str, int]], str]  # kind, account, (table, row) pairs, note


def _plant(b: _Builder, people: list[_Person], n: int) -> list[Planted]:
    """Plant incidents on accounts that do not travel (one incident per account)."""
    rng, out = b.rng, []
    pool = [people[i] for i in rng.permutation(len(people)) if people[i].travel is None]
    quota = {"takeover": max(1, n // 40), "large_withdrawal": max(1, n // 100),
             "relative_withdrawal": max(1, n // 100), "leverage_spike": max(1, n // 80),
             "margin_call": max(1, n // 80)}
    lo = min(7, max(1, b.days // 3))
    hi = max(b.days - 2, lo + 1)
    for p in pool:
        kind = next((k for k, q in quota.items() if q > 0 and _fits(k, p, b, lo)), None)
        if kind is None:
            continue
        quota[kind] -= 1
        rows: list[tuple[str, int]] = []
        if kind == "takeover":
            rot = int(rng.integers(len(ATTACKERS)))
            where, asn, o1, o2, hosting = next(
                a for a in ATTACKERS[rot:] + ATTACKERS[:rot] if a[0].country != p.country.code)
            t = max(b.at(p.city.tz, int(rng.integers(lo, hi)), float(rng.uniform(1.5, 5))),
                    p.logins_ok[2] + timedelta(hours=1))  # at night, after the learning period
            dev = (f"dev-{_chars(rng, '0123456789abcdef', 12)}", "attacker")
            ip = f"{o1}.{o2}.{rng.integers(256)}.{rng.integers(1, 255)}"
            fails = int(rng.integers(0, 4))  # the stolen password sometimes needs a few tries
            for k in range(fails):
                ts = t - timedelta(minutes=3 * (fails - k))
                rows.append(("logins", b.login(p, ts, dev, ip, asn, where, False, hosting)))
            rows.append(("logins", b.login(p, t, dev, ip, asn, where, True, hosting)))
            moves = ["2fa_reset", "email_change", "password_change", "whitelist_change", "api_key_created"]
            secs = [str(s) for s in rng.choice(moves, int(rng.integers(1, 3)), replace=False)]
            for m, sec in enumerate(secs):
                ts = t + timedelta(minutes=5 + 7 * m)
                rows.append(("security_events", b.add("security_events", account_id=p.account_id, ts=ts,
                                                      kind=sec, ip=ip, device_id=dev[0])))
            asset, usd = str(rng.choice(["BTC", "ETH", "USDT"])), float(rng.uniform(12_000, 60_000))
            ts = t + timedelta(minutes=int(rng.integers(20, 60)))
            rows.append(("transactions", b.tx(p, ts, "withdrawal", asset, usd, address=address(rng, asset))))
            note = (f"login from {where.name} ({where.country}) on a new device after {fails} failed "
                    f"attempt(s), {' + '.join(secs)}, then {usd:,.0f} USD in {asset} to a new address")
        elif kind in ("large_withdrawal", "relative_withdrawal"):
            day = hi if kind == "relative_withdrawal" else int(rng.integers(lo, hi + 1))
            t = min(b.at(p.city.tz, day, float(rng.uniform(10, 20))), b.end - timedelta(hours=1))
            prior = [u for ts, u in p.withdrawals if ts < t] if kind == "relative_withdrawal" else []
            mean = float(np.mean(prior)) if prior else 0.0
            usd = max(1500.0, 8 * mean) if mean else float(rng.uniform(15_000, 45_000))
            asset, to = p.targets[0]
            rows.append(("transactions", b.tx(p, t, "withdrawal", asset, usd, address=to)))
            note = f"the owner withdraws {usd:,.0f} USD to a known address"
            note += f", {usd / mean:.1f}x the usual {mean:,.0f} USD" if mean else ""
            kind = "large_withdrawal"
        else:
            sym = p.symbols[0]
            idx = _window(b, p.position_rows[sym], lo)
            k = int(rng.integers(0, len(idx) - 5))
            idx = idx[k: k + 6]
            levs = [25.0, 35.0, 50.0, 75.0, 100.0, 100.0] if kind == "leverage_spike" else None
            for j, i in enumerate(idx):
                r = b.rows["positions"][i]
                if levs:
                    r["notional_usd"] = round(r["notional_usd"] * levs[j] / r["leverage"], 2)
                    r["leverage"], r["margin_ratio"] = levs[j], round(0.35 + 0.06 * j, 4)
                else:
                    r["margin_ratio"] = [0.55, 0.66, 0.74, 0.83, 0.91, 0.96][j]
                rows.append(("positions", i))
            note = f"{sym} leverage 25x -> 100x" if levs else f"{sym} margin ratio 0.55 -> 0.96"
        kept = [r for r in rows if r[1] >= 0]
        if kept:
            out.append((kind, p, kept, note))
    return out


def _fits(kind: str, p: _Person, b: _Builder, lo: int) -> bool:
    if kind == "takeover":
        return len(p.logins_ok) >= 3 and p.logins_ok[2] < b.end - timedelta(days=2)
    if kind == "relative_withdrawal":
        prior = [u for ts, u in p.withdrawals if ts < b.end - timedelta(days=3)]  # all before it lands
        return len(prior) >= 3 and 8 * float(np.mean(prior)) < 9_000
    if kind in ("leverage_spike", "margin_call"):
        if not p.symbols:
            return False
        return len(_window(b, p.position_rows[p.symbols[0]], lo)) >= 7
    return kind == "large_withdrawal"


def _window(b: _Builder, rows: list[int], lo: int) -> list[int]:
    """Position rows from day ``lo`` to two days before the end: room for history and aftermath."""
    first, last = b.at("UTC", lo, 0), b.end - timedelta(days=2)
    return [i for i in rows if first <= b.rows["positions"][i]["ts"] < last]


TABLES_KIND = {c.name: c.kind for t in TABLES.values() for c in t.columns if c.name != "ts"}


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes; missing text is None (not NaN) so CSV and Parquet both write a null."""
    for col in df.columns:
        kind = TABLES_KIND.get(col)
        if kind == "float":
            df[col] = pd.to_numeric(df[col]).astype("float64")
        elif kind == "int":
            df[col] = df[col].astype("Int64")
        elif kind == "bool":  # a flag no row sets (address_whitelisted: no address book here) is false, not NaN -> True
            df[col] = df[col].astype("boolean").fillna(False).astype(bool)
        elif kind == "str":
            text = df[col].astype(object)
            text[text.isna()] = None
            df[col] = text
    return df


def generate_with_labels(
    seed: int = 7, accounts: int = 200, days: int = 30, start: datetime = DEFAULT_START
) -> tuple[Frames, Labels]:
    """The data set and what was planted in it (see the module docstring)."""
    if not isinstance(accounts, int) or accounts < 1:
        raise ValueError(f"accounts must be a whole number >= 1. Got {accounts!r}.")
    if not isinstance(days, int) or days < 3:
        raise ValueError(f"days must be a whole number >= 3. Got {days!r}.")
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware (UTC). Got {start!r}.")
    rng = np.random.default_rng(seed)
    b = _Builder(rng, start.astimezone(UTC), days)
    people = [_person(rng, i) for i in range(accounts)]
    account_rows = [_account_row(rng, p, b.start) for p in people]
    trips = [(p, _normal(b, p)) for p in people]
    planted = _plant(b, people, accounts)
    frames: Frames = {"accounts": pd.DataFrame(account_rows, columns=list(TABLES["accounts"].names))}
    frames["accounts"]["created_at"] = pd.to_datetime(frames["accounts"]["created_at"], utc=True)
    frames["accounts"] = _typed(frames["accounts"])
    ids: dict[str, list[str]] = {}
    for table, rows in b.rows.items():
        df = pd.DataFrame(rows, columns=[c for c in TABLES[table].names if c != "event_id"])
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        order = np.argsort(df["ts"].to_numpy(dtype="datetime64[ns]"), kind="stable")
        width = max(6, len(str(len(df))))
        ids[table] = [""] * len(df)
        for rank, pos in enumerate(order):
            ids[table][pos] = f"{PREFIX[table]}-{rank + 1:0{width}d}"
        df.insert(0, "event_id", ids[table])
        frames[table] = _typed(df.iloc[order].reset_index(drop=True))

    def incident(kind: str, p: _Person, rows: list[tuple[str, int]], expect: list[str], note: str
                 ) -> Incident:
        rows = sorted(rows, key=lambda r: (b.rows[r[0]][r[1]]["ts"], r[0]))
        return Incident(kind=kind, account_id=p.account_id, event_ids=[ids[t][i] for t, i in rows],
                        ts=b.rows[rows[0][0]][rows[0][1]]["ts"].isoformat(), expect=expect, note=note)

    expect = {"takeover": ["new_location", "large_withdrawal"], "large_withdrawal": ["large_withdrawal"],
              "leverage_spike": ["high_leverage"], "margin_call": ["high_leverage"]}
    benign = [incident("travel", p, [("logins", i) for i in rows], [], f"trip to {p.travel[2].name}")
              for p, rows in trips if rows and p.travel is not None]
    planted_ = [incident(k, p, rows, expect[k], note) for k, p, rows, note in planted]
    labels = Labels(seed=seed, planted=planted_, benign=benign)
    return frames, labels


def generate(seed: int = 7, accounts: int = 200, days: int = 30, start: datetime = DEFAULT_START) -> Frames:
    """The five canonical tables (accounts, logins, transactions, positions, security_events)."""
    return generate_with_labels(seed, accounts, days, start)[0]


def write_dir(frames: Mapping[str, pd.DataFrame], path: str | Path, fmt: str = "csv") -> list[Path]:
    """Write one ``NAME.csv`` or ``NAME.parquet`` per table: a data directory for import/backtest.

    CSV timestamps are ISO 8601 in UTC (``2026-03-02T08:15:00Z``), booleans ``true``/``false``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet'. Got {fmt!r}.")
    unknown = sorted(set(frames) - set(TABLES))
    if unknown:
        raise ValueError(f"not contract tables: {', '.join(unknown)} (known: {', '.join(TABLES)})")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in frames.items():
        target = out / f"{name}.{fmt}"
        if fmt == "parquet":
            df.to_parquet(target, index=False)
        else:
            df = df.copy()
            for col in df.columns:
                if pd.api.types.is_datetime64_any_dtype(df[col]):
                    s = pd.to_datetime(df[col], utc=True)
                    naive: Any = s.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
                    text = (np.datetime_as_string(naive, unit="us", timezone="UTC")
                            if (s.dt.microsecond != 0).any()
                            else np.datetime_as_string(naive, unit="s", timezone="UTC")).astype(object)
                    df[col] = np.where(s.isna().to_numpy(), "", text)
                elif pd.api.types.is_bool_dtype(df[col]):
                    df[col] = df[col].map({True: "true", False: "false"})
            df.to_csv(target, index=False)
        written.append(target)
    return written


def big(
    n_logins: int = 1_000_000, n_transactions: int = 1_000_000, seed: int = 7, *,
    n_positions: int | None = None, n_accounts: int | None = None, days: int = 30, start: datetime = DEFAULT_START,
) -> Frames:
    """A large canonical data set for benchmarks (``vigil_lab.synth_big``): vectorised numpy, no per-row Python."""
    from vigil_lab.synth_big import big as _big

    return _big(n_logins, n_transactions, seed, n_positions=n_positions, n_accounts=n_accounts, days=days,
                start=start)
