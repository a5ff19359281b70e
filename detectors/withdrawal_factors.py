"""The features of ``withdrawal_risk``: one factor per feature and withdrawal, with the sentence the
evidence shows.  Each function reads the withdrawals of a :class:`Scoring` (and the inputs of
:mod:`detectors.withdrawal_inputs`), adds its factors and texts, and keeps what the evidence needs
in ``Scoring.extra``.  The factors and their parameters are described in :mod:`detectors.withdrawal_risk`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors import withdrawal_inputs as wi
from detectors.batch import Batch
from detectors.large_withdrawal import account_created
from detectors.new_address import previous_use
from detectors.sequence import NS_PER_DAY, NS_PER_HOUR, Seq, build_seq, to_cents, window_sums


@dataclass
class Scoring:
    """The withdrawals of one batch being scored: their factors and texts per feature."""

    p: Mapping[str, Any]  # the detector's parameters
    wd: pd.DataFrame
    accts: pd.Series
    t: pd.Series  # ns
    profile: Mapping[str, Mapping[str, Any]]
    factors: dict[str, np.ndarray] = field(default_factory=dict)
    texts: dict[str, list[str | None]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.wd)

    def log10(self) -> np.ndarray:
        """The score: the sum of the log10 factors."""
        out = np.zeros(self.n)
        for f in self.factors.values():
            out += np.log10(f)
        return out


def address(s: Scoring, addr: pd.Series, batch: Batch, book: Mapping[str, Any]) -> None:
    """Used before, in the address book, cooling off, the first withdrawal, or new."""
    p, n, accts, t, factors, texts = s.p, s.n, s.accts, s.t, s.factors, s.texts
    wd, profile = s.wd, s.profile
    seen_before = {a: int(profile[a].get("n", 0)) for a in accts.unique()}
    n_prior = accts.map(seen_before).astype(np.int64) + wd.groupby(accts, sort=False).cumcount()
    a_ok = addr.notna()
    prev_t = pd.Series(np.nan, index=wd.index)
    if a_ok.any():
        prev_t[a_ok] = previous_use(accts[a_ok], addr[a_ok].astype(str), t[a_ok], profile)
    used = (prev_t.notna() & ((t - prev_t) < p["window_days"] * NS_PER_DAY)).to_numpy()
    added = wi.added_at(accts, addr, t, book)
    cool_ns = p["cooling_off_hours"] * NS_PER_HOUR
    since_add = t.to_numpy(dtype=np.float64) - added
    in_book = ~np.isnan(added) & (since_add >= cool_ns)
    cooling = ~np.isnan(added) & (since_add < cool_ns)
    if batch.has_column("transactions", "address_whitelisted"):
        wl = wd["address_whitelisted"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        in_book |= wl & ~cooling
    first = (n_prior == 0).to_numpy()
    a_known = a_ok.to_numpy()
    f_addr = np.where(
        ~a_known,
        1.0,
        np.where(
            cooling,
            p["cooling_address"],
            np.where(used | in_book, p["known_address"], np.where(first, p["first_address"], p["new_address"])),
        ),
    )
    factors["address"] = f_addr
    texts["address"] = [
        None
        if not a_known[i]
        else f"added to the address book {since_add[i] / NS_PER_HOUR:.1f} h ago"
        if cooling[i]
        else "address used before"
        if used[i]
        else "address in the address book"
        if in_book[i]
        else "first withdrawal"
        if first[i]
        else "new address"
        for i in range(n)
    ]
    s.extra.update(used=used, in_book=in_book, a_known=a_known)


def amount(s: Scoring, usd: pd.Series) -> Seq:
    """The amount against the account's usual withdrawals; returns the amounts' sequence (profile)."""
    p, n, accts, factors, texts = s.p, s.n, s.accts, s.factors, s.texts
    wd, profile = s.wd, s.profile
    priced = usd.notna().to_numpy()
    cents = np.where(priced, to_cents(np.nan_to_num(usd.to_numpy(dtype=np.float64))), 0)
    hist = ((a, it[0], it[1], (int(it[2]),)) for a in accts.unique() for it in profile[a].get("w", []))
    wdp = wd[priced]
    seq = build_seq(wdp, {"cents": cents[priced].astype(np.int64)}, hist, ("cents",))
    win = window_sums(
        seq,
        np.ones(len(seq), dtype=bool),
        seq.cols["cents"],
        p["history_days"] * NS_PER_DAY,
        p["max_history"],
        inclusive=False,
    )
    mean = pd.Series(np.nan, index=wd.index)
    count = pd.Series(0, index=wd.index, dtype=np.int64)
    newrows = np.flatnonzero(seq.new)
    labels = seq.row[newrows]
    mean.loc[labels] = np.where(win.count[newrows] > 0, win.total[newrows] / np.maximum(win.count[newrows], 1), np.nan)
    count.loc[labels] = win.count[newrows]
    usd_c = cents.astype(np.float64)
    warm = (count.to_numpy() >= p["min_history"]) & (mean.to_numpy() > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mult = np.where(warm, usd_c / mean.to_numpy(), np.nan)
    f_amt = np.where(
        ~priced,
        1.0,
        np.where(
            warm,
            np.clip(mult / 2.0, 0.5, p["max_amount_factor"]),
            np.clip(usd_c / 100.0 / p["cold_start_usd"], 0.5, 4.0),
        ),
    )
    factors["amount"] = f_amt
    texts["amount"] = [
        None
        if not priced[i]
        else f"{mult[i]:.1f}x the usual amount"
        if warm[i]
        else f"{usd_c[i] / 100:,.0f} USD without withdrawal history"
        for i in range(n)
    ]
    s.extra.update(priced=priced, usd_c=usd_c, mult=mult)
    return seq


def share(s: Scoring, tx: pd.DataFrame, has_usd: bool) -> None:
    """The withdrawal against the account's running balance."""
    p, n, factors, texts = s.p, s.n, s.factors, s.texts
    wd, profile = s.wd, s.profile
    priced, usd_c = s.extra["priced"], s.extra["usd_c"]
    before = wi.balance_before(tx, has_usd, profile, wd.index)
    sh = np.where(priced & (before > 0), usd_c / np.where(before > 0, before, 1.0), np.nan)
    sh[sh > 1.0] = np.nan  # more than the flows seen: the balance began before them, unknown
    s90, s50, s20 = (float(x) for x in p["share_factors"])
    f_share = np.where(
        np.isnan(sh),
        1.0,
        np.where(sh >= 0.9, s90, np.where(sh >= 0.5, s50, np.where(sh >= 0.2, s20, p["small_share"]))),
    )
    factors["share"] = f_share
    texts["share"] = [None if np.isnan(sh[i]) else f"{min(sh[i], 9.99):.0%} of the balance" for i in range(n)]
    s.extra["share"] = sh


def change(s: Scoring, changes: Mapping[str, Any]) -> None:
    """A security change within change_hours (or three times that) before the withdrawal."""
    p, n, accts, t, factors, texts = s.p, s.n, s.accts, s.t, s.factors, s.texts
    ch_t, ch_kind = wi.asof(accts, t, changes["frame"], ("kind",))
    hours = (t.to_numpy(dtype=np.float64) - ch_t) / NS_PER_HOUR
    ch = p["change_hours"]
    f_ch = np.where(
        np.isnan(hours) | (hours > 3 * ch),
        1.0,
        np.where(hours <= ch, p["change_factor"], p["change_factor"] ** 0.5),
    )
    factors["change"] = f_ch
    texts["change"] = [None if f_ch[i] == 1.0 else f"{ch_kind[i]} {hours[i]:.1f} h before" for i in range(n)]
    s.extra.update(f_ch=f_ch, hours=hours)


def session(
    s: Scoring,
    ok: pd.DataFrame | None,
    dev_col: bool,
    net: pd.Series | None,
    devices: Mapping[str, Any],
    networks: Mapping[str, Any],
) -> None:
    """The session's device and network (new or known) and the time since its login."""
    p, n, accts, t, factors, texts = s.p, s.n, s.accts, s.t, s.factors, s.texts
    profile = s.profile
    observed_from = wi.observed(ok, profile)
    sess = wi.last_login_frame(ok, ok["device_id"] if dev_col and ok is not None else None, net, profile)
    l_t, l_dev, l_net = wi.asof(accts, t, sess, ("device", "net"))
    since_login = (t.to_numpy(dtype=np.float64) - l_t) / NS_PER_HOUR
    in_session = ~np.isnan(since_login) & (since_login <= p["session_hours"])
    trust = p["trust_after_hours"] * NS_PER_HOUR
    session_feats: tuple[tuple[str, np.ndarray, pd.DataFrame, float, float], ...] = (
        ("device", l_dev, devices["frame"], p["new_device"], p["known_device"]),
        ("network", l_net, networks["frame"], p["new_network"], p["known_network"]),
    )
    observed = accts.map(observed_from).to_numpy(dtype=np.float64)  # the account's first login seen
    for feat, vals, seen, new_f, known_f in session_feats:
        label = feat
        firsts = wi.lookup_first(accts, vals, seen)
        age = t.to_numpy(dtype=np.float64) - firsts
        # new only against history: a value first seen within trust_after_hours of the account's
        # first observed login is unknown (cold start), not new
        too_early = (age < trust) & ((firsts - observed) < trust)
        known_v = in_session & pd.notna(vals) & ~np.isnan(firsts) & ~too_early
        is_new = known_v & (age < trust)
        factors[feat] = np.where(~known_v, 1.0, np.where(is_new, new_f, known_f))
        texts[feat] = [
            None
            if not known_v[i]
            else f"{label} new in this session (first seen {age[i] / NS_PER_HOUR:.1f} h before)"
            if is_new[i]
            else f"{label} known for {age[i] / NS_PER_DAY:.0f} days"
            for i in range(n)
        ]
    if ok is not None or any(profile[a].get("l") for a in accts.unique()):
        factors["login"] = np.where(in_session, p["recent_login"], p["no_session"])
        texts["login"] = [
            f"{since_login[i]:.1f} h after login"
            if in_session[i]
            else f"no login in the {p['session_hours']:g} h before"
            for i in range(n)
        ]
    s.extra.update(in_session=in_session, since_login=since_login)


def age(s: Scoring, batch: Batch) -> None:
    """The account's age (accounts.created_at)."""
    p, n, accts, t, factors, texts = s.p, s.n, s.accts, s.t, s.factors, s.texts
    created = account_created(batch)
    c_ns = accts.map(created).to_numpy(dtype=np.float64) if created else np.full(n, np.nan)
    age_d = (t.to_numpy(dtype=np.float64) - c_ns) / NS_PER_DAY
    f_age = np.where(
        np.isnan(age_d),
        1.0,
        np.where(age_d < 7, p["young_account"], np.where(age_d < 30, p["young_account"] ** 0.5, 1.0)),
    )
    factors["age"] = f_age
    texts["age"] = [None if f_age[i] == 1.0 else f"account {age_d[i]:.0f} days old" for i in range(n)]
    s.extra["age_d"] = age_d
