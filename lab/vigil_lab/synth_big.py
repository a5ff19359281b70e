"""The vectorised generator behind :func:`vigil_lab.synth.big`: million-row benchmark sets, no per-row Python."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from vigil_lab.synth_places import ATTACKERS, COUNTRIES, DEFAULT_START, NETWORK, PRICES, UA

Frames = dict[str, pd.DataFrame]


def _seq(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}-{i:08d}" for i in range(1, n + 1)], dtype=object)


def _where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``mask``, else None (an object column with real nulls)."""
    out = np.full(len(values), None, dtype=object)
    out[mask] = values[mask]
    return out


def _obj(*values: object) -> np.ndarray:
    """A small lookup table of Python objects: ``_obj(a, b)[codes]`` builds a column without copies."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def big(
    n_logins: int = 1_000_000, n_transactions: int = 1_000_000, seed: int = 7, *,
    n_positions: int | None = None, n_accounts: int | None = None, days: int = 30,
    start: datetime = DEFAULT_START,
) -> Frames:
    """A large canonical data set for benchmarks, built with vectorised numpy (no per-row Python).

    Rarer than in :func:`generate` but present, so that checks have work to do: 0.2 % of logins
    come from an attacker's country, 0.1 % of transactions are withdrawals of 10,000-100,000 USD,
    0.2 % of position snapshots carry leverage >= 50 and 0.3 % a margin ratio >= 0.7.
    ``n_positions`` defaults to a fifth of ``n_transactions``; ``n_accounts`` to ``n_logins // 50``.
    """
    for name, v in (("n_logins", n_logins), ("n_transactions", n_transactions)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a whole number >= 0. Got {v!r}.")
    rng = np.random.default_rng(seed)
    n_acc = n_accounts or max(100, n_logins // 50)
    n_pos = n_transactions // 5 if n_positions is None else n_positions
    homes = [c for k in COUNTRIES.values() for c in k.cities]
    isp = [COUNTRIES[c.country].isps[0] for c in homes]
    w = np.array([COUNTRIES[c.country].weight / len(COUNTRIES[c.country].cities) for c in homes])
    home = rng.choice(len(homes), n_acc, p=w / w.sum())
    places = homes + [a[0] for a in ATTACKERS]
    col = {k: np.array([getattr(c, k) for c in places], dtype=object) for k in ("name", "country", "tz")}
    lat, lon = (np.array([getattr(c, k) for c in places]) for k in ("lat", "lon"))
    asn_of = np.array([i[0] for i in isp] + [a[1] for a in ATTACKERS])
    oct_ab = [f"{i[1]}.{i[2]}" for i in isp] + [f"{a[2]}.{a[3]}" for a in ATTACKERS]
    ids = _seq("acct", n_acc)
    h_ip = np.array([f"{oct_ab[h]}.{rng.integers(256)}.{rng.integers(1, 255)}" for h in home], dtype=object)
    devices = np.array([f"dev-{i:07d}{k}" for i in range(n_acc) for k in "pd"], dtype=object)
    tier = rng.choice(np.array(["retail", "vip", "institutional"], dtype=object), n_acc, p=[0.85, 0.12, 0.03])
    typical = np.clip(rng.lognormal(np.log(400), 0.7, n_acc), 30, 5000)
    t0 = pd.Timestamp(start).tz_convert("UTC")
    accounts = pd.DataFrame({
        "account_id": ids, "created_at": t0 - pd.to_timedelta(rng.integers(40, 1500, n_acc), unit="D"),
        "locale": np.array([COUNTRIES[c.country].locale for c in homes], dtype=object)[home],
        "timezone": col["tz"][home], "tier": tier, "status": "active"})

    def times(n: int) -> pd.Series:
        return pd.Series(t0 + pd.to_timedelta(np.sort(rng.integers(0, days * 86400, n)), unit="s"))

    acc = rng.integers(0, n_acc, n_logins)
    place = home[acc].copy()
    foreign = rng.random(n_logins) < 0.002
    place[foreign] = len(homes) + rng.integers(0, len(ATTACKERS), int(foreign.sum()))
    dev = rng.integers(0, 2, n_logins)
    ip = h_ip[acc]
    ip[foreign] = [f"{oct_ab[p]}.{i // 250 % 256}.{i % 250 + 1}" for i, p in enumerate(place[foreign])]
    logins = pd.DataFrame(copy=False, data={
        "event_id": _seq("lg", n_logins), "account_id": ids[acc], "ts": times(n_logins),
        "success": rng.random(n_logins) > 0.03, "ip": ip, "country": col["country"][place],
        "city": col["name"][place], "lat": lat[place], "lon": lon[place],
        "asn": pd.array(asn_of[place], dtype="Int64"),
        "device_id": np.where(foreign, _obj("dev-attacker")[0], devices[acc * 2 + dev]),
        "user_agent": _obj(UA["ios"], UA["desktop"])[dev], "channel": _obj("app", "web")[dev],
        "is_anonymous_ip": foreign & (place % 2 == 0)})

    acc = rng.integers(0, n_acc, n_transactions)
    kind = _obj("trade", "deposit", "withdrawal", "transfer_in", "transfer_out")[
        rng.choice(5, n_transactions, p=[0.7, 0.12, 0.12, 0.03, 0.03])]
    assets = _obj("BTC", "ETH", "SOL", "USDT")
    a_idx = rng.integers(0, len(assets), n_transactions)
    asset = assets[a_idx]
    usd = typical[acc] * np.clip(rng.lognormal(0, 0.25, n_transactions), 0.6, 1.6)
    wd = kind == "withdrawal"
    large = wd & (rng.random(n_transactions) < 0.001 / 0.12)
    usd[large] = rng.uniform(10_000, 100_000, int(large.sum()))
    price = np.array([PRICES[a] for a in assets])[a_idx]
    network = _obj(*(NETWORK[a] for a in assets))[a_idx]
    trade = kind == "trade"
    side = _obj("buy", "sell")[rng.integers(0, 2, n_transactions)]
    transactions = pd.DataFrame(copy=False, data={
        "event_id": _seq("tx", n_transactions), "account_id": ids[acc], "ts": times(n_transactions),
        "kind": kind, "asset": asset, "amount": np.round(usd / price, 8), "amount_usd": np.round(usd, 2),
        "address": _where(wd, _obj("bc1qknown-", "bc1qnew-")[large.astype(int)] + ids[acc]),
        "network": _where(~trade, network),
        "symbol": _where(trade, _obj(*(f"{a}USDT" for a in assets))[a_idx]),
        "side": _where(trade, side)})

    holders = rng.choice(n_acc, max(1, n_acc * 3 // 10), replace=False)
    acc = holders[rng.integers(0, len(holders), n_pos)]
    lev = rng.choice([2.0, 3.0, 5.0, 10.0, 20.0, 25.0], n_acc)[acc]  # one position per holder, steady
    hot = rng.random(n_pos) < 0.002
    lev[hot] = rng.choice([50.0, 75.0, 100.0, 125.0], int(hot.sum()))
    mr = rng.uniform(0.03, 0.55, n_pos)
    near = rng.random(n_pos) < 0.003
    mr[near] = rng.uniform(0.7, 0.99, int(near.sum()))
    notional = typical[acc] * rng.uniform(2, 10, n_pos)
    positions = pd.DataFrame(copy=False, data={
        "event_id": _seq("ps", n_pos), "account_id": ids[acc], "ts": times(n_pos),
        "symbol": _obj("BTCUSDT", "ETHUSDT", "SOLUSDT")[acc % 3], "leverage": lev,
        "margin_ratio": np.round(mr, 4), "notional_usd": np.round(notional, 2),
        "unrealized_pnl_usd": np.round(notional * rng.normal(0, 0.03, n_pos), 2)})
    return {"accounts": accounts, "logins": logins, "transactions": transactions, "positions": positions}
