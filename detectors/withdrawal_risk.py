"""Withdrawal risk: the weak signals of a withdrawal combined into one score, as ``login_risk`` does for logins.

No single property of a withdrawal says "takeover": people pay new addresses, withdraw large sums,
change phones and travel.  A takeover is several of them at once -- money to an address the account
never used, far above its usual size, most of the balance, soon after a password or 2FA change, in a
session on a device and network the account never used.  Each feature ``k`` contributes a factor, a
likelihood ratio ``p(x_k | takeover) / p(x_k | owner)``, and the score is their product (naive Bayes,
as Freeman et al. 2016 score logins; research b12):

    log10_score = Σ_k log10 factor_k

A factor above 1 points to a takeover, below 1 to the owner; an unknown feature (a column the operator
does not send) has factor 1.  ``probability`` turns the score into a posterior with the prior odds
``prior_odds`` (how many withdrawals are takeovers before anything is known):
``p = odds / (1 + odds)`` with ``odds = prior_odds · score``.

Features and their factors (parameters, defaults from the measurements in docs/quality.md):

* **address**: used before by the account within ``window_days`` (``known_address``); in the
  exchange's address book -- a ``security_events`` row of kind ``address_added`` with its
  ``address``, or ``transactions.address_whitelisted`` true -- for at least ``cooling_off_hours``
  (``known_address`` as well); added to the address book less than ``cooling_off_hours`` ago
  (``cooling_address``: attackers add their address, then withdraw); never used (``new_address``);
  the first withdrawal seen for the account (``first_address``, neutral by default: every first
  withdrawal goes somewhere new).
* **amount** against the account's mean withdrawal (last ``max_history`` within ``history_days``):
  ``clip(multiple / 2, 0.5, max_amount_factor)``; before ``min_history`` withdrawals, against
  ``cold_start_usd``: ``clip(usd / cold_start_usd, 0.5, 4)``.
* **share of balance**: the withdrawal against the account's running balance (deposits and transfers
  in minus withdrawals and transfers out, in USD, since the profile began): ``share_factors`` for
  at least 90 %, 50 %, 20 %, else ``small_share``.  Unknown (no flows seen, not positive, or below
  the withdrawal -- the balance began before the flows Vigil saw): 1.
* **security change**: a password, 2FA, e-mail, phone or allow-list change within ``change_hours``
  before (``change_factor``), or within three times that (``change_factor ** 0.5``).
* **session device and network**: the last successful login within ``session_hours`` before the
  withdrawal; its device first seen less than ``trust_after_hours`` before the withdrawal is new
  (``new_device``), else known (``known_device``); the same for its network (ASN, else the IP's
  /24) with ``new_network`` / ``known_network``.  A value first seen within ``trust_after_hours``
  of the account's first login Vigil saw is unknown, not new (cold start: no history to compare).
* **time since login**: within ``session_hours`` (``recent_login``), none (``no_session``).
* **account age** (``accounts.created_at``): younger than 7 days ``young_account``, than 30 days
  its square root.

Profile (bounded): ``{"v": 1, "n": withdrawals, "a": {address: last_used}, "b": {address: added},
"w": [[ts, event_id, usd_cents], ...], "bal": cents|null, "c": last_change|null,
"d": {device: [first, last]}, "k": {network: [first, last]}, "l": [ts, device, network]|null,
"o": first_login_seen}``: at
most ``max_addresses`` addresses of each kind, ``max_history`` amounts, 50 devices and networks
(the most recently used).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.contract import SECURITY_KINDS
from detectors.large_withdrawal import OUT_KINDS, account_created, usd_amounts
from detectors.new_address import normalise_addresses, previous_use, remember
from detectors.sequence import (
    NS_PER_DAY,
    NS_PER_HOUR,
    PROFILE_VERSION,
    build_seq,
    iso_at,
    iso_to_ns,
    keep_recent,
    ns_to_iso,
    per_account,
    state_of,
    to_cents,
    to_ns,
    ts_of,
    window_sums,
)
from detectors.withdrawal_after_change import TAKEOVER_KINDS

IN_KINDS = ("deposit", "transfer_in")
CHANGE_KINDS = (*TAKEOVER_KINDS, "whitelist_change")
MAX_DEVICES = 50
FEATURES = ("address", "amount", "share", "change", "device", "network", "login", "age")


class WithdrawalRisk(Detector):
    name = "withdrawal_risk"
    family = "transfer"
    table = "transactions"
    extra_tables = ("logins", "security_events", "accounts")
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("amount_usd", "address", "address_whitelisted")
    description = (
        "A withdrawal whose combined signals (address, amount, balance, session, changes) look like a takeover."
    )
    params: ClassVar[Mapping[str, Param]] = {
        "min_log10_score": Param(1.0, "Report withdrawals whose score is at least 10^this.", ge=-10, le=20),
        "prior_odds": Param(0.001, "Prior odds of a takeover per withdrawal (for 'probability').", gt=0, le=1),
        "window_days": Param(365, "An address used within this many days is known.", kind=int, ge=1, le=3650),
        "cooling_off_hours": Param(
            24.0, "An address-book entry counts as familiar this long after it was added.", ge=0, le=24 * 90
        ),
        "history_days": Param(90, "Days of withdrawals that form the usual amount.", kind=int, ge=1, le=3650),
        "min_history": Param(3, "Withdrawals needed before the amount is judged against them.", kind=int, ge=1, le=100),
        "max_history": Param(50, "At most this many withdrawals form the usual amount.", kind=int, ge=1, le=500),
        "cold_start_usd": Param(3000.0, "Without history the amount factor is usd / this (0.5 to 4).", gt=0),
        "change_hours": Param(24.0, "A security change this recent gives the full change factor.", gt=0, le=720),
        "session_hours": Param(24.0, "The session: the last successful login this recent.", gt=0, le=720),
        "trust_after_hours": Param(
            48.0, "A device or network first seen this long before the withdrawal is known.", ge=0, le=24 * 365
        ),
        "max_addresses": Param(500, "Profile bound: addresses remembered per kind.", kind=int, ge=1, le=5000),
        "kinds": Param(("withdrawal",), "Transaction kinds that count as withdrawals.", kind=list, choices=OUT_KINDS),
        "change_kinds": Param(
            CHANGE_KINDS, "Security-event kinds that count as a change.", kind=list, choices=SECURITY_KINDS
        ),
        # likelihood ratios p(feature | takeover) / p(feature | owner)
        "new_address": Param(8.0, "Factor of an address the account never used.", gt=0, le=1000),
        "first_address": Param(
            1.0, "Factor of the first withdrawal seen (every first goes somewhere new).", gt=0, le=1000
        ),
        "cooling_address": Param(12.0, "Factor of an address added to the address book lately.", gt=0, le=1000),
        "known_address": Param(0.5, "Factor of an address used before or in the address book.", gt=0, le=1000),
        "max_amount_factor": Param(10.0, "Cap of the amount factor.", ge=1, le=1000),
        "share_factors": Param((4.0, 1.5, 1.0), "Factors for at least 90 %, 50 % and 20 % of the balance.", kind=list),
        "small_share": Param(0.5, "Factor below 20 % of the balance.", gt=0, le=1000),
        "change_factor": Param(20.0, "Factor of a security change within change_hours.", gt=0, le=10000),
        "new_device": Param(6.0, "Factor of a session on a new device.", gt=0, le=1000),
        "known_device": Param(0.6, "Factor of a session on a known device.", gt=0, le=1000),
        "new_network": Param(2.0, "Factor of a session from a new network.", gt=0, le=1000),
        "known_network": Param(0.8, "Factor of a session from a known network.", gt=0, le=1000),
        "recent_login": Param(1.2, "Factor of a withdrawal within session_hours of a login.", gt=0, le=1000),
        "no_session": Param(0.8, "Factor of a withdrawal with no login within session_hours.", gt=0, le=1000),
        "young_account": Param(4.0, "Factor of an account younger than 7 days.", gt=0, le=1000),
    }

    def _check_params(self) -> None:
        for name in ("kinds", "change_kinds"):
            if not self.p[name]:
                raise ParameterError(f"The {name!r} parameter of WithdrawalRisk must not be empty.")
        sf = self.p["share_factors"]
        if len(sf) != 3 or not all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in sf):
            raise ParameterError(
                f"The 'share_factors' parameter of WithdrawalRisk must be three numbers > 0. Got {list(sf)!r} instead."
            )
        self._require_not_above("min_history", "max_history")

    # -- scan -------------------------------------------------------------------------------------------
    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        tx = batch.get("transactions")
        logins = batch.get("logins")
        sec = batch.get("security_events")
        accounts: set[str] = set()
        for f in (tx, logins, sec):
            if f is not None:
                accounts.update(f["account_id"].astype(str).unique())
        if not accounts:
            return result
        profile = {a: state_of(profiles, a) for a in accounts}
        has_usd = batch.has_column("transactions", "amount_usd")
        wd = None if tx is None else tx[tx["kind"].isin(self.p["kinds"])]
        if wd is not None and wd.empty:
            wd = None

        ok = None
        if logins is not None:
            ok = logins[logins["success"].fillna(False).astype(bool)]
            ok = None if ok.empty else ok
        dev_col = ok is not None and batch.has_column("logins", "device_id")
        net = _networks(ok, batch) if ok is not None else None
        devices = _first_last(ok, ok["device_id"] if dev_col and ok is not None else None, profile, "d")
        networks = _first_last(ok, net, profile, "k")
        book = self._book(sec, batch, profile)
        changes = self._changes(sec, profile)
        observed = {a: ns_to_iso(np.array([int(v)]))[0] for a, v in _observed(ok, profile).items()}
        last_login = _last_login(ok, ok["device_id"] if dev_col and ok is not None else None, net, profile)

        amounts_seq = None
        new_addr_state: dict[str, dict[str, str]] = {}
        n_seen: dict[str, int] = {}
        if wd is not None and tx is not None:
            amounts_seq, new_addr_state, n_seen = self._judge(
                result, wd, tx, batch, profile, has_usd, ok, dev_col, net, devices, networks, book, changes, now
            )
        balance = _balance(tx, has_usd, profile)
        hist_w = (
            {}
            if amounts_seq is None
            else per_account(
                amounts_seq,
                keep_recent(amounts_seq, self.p["history_days"] * NS_PER_DAY, self.p["max_history"]),
                [
                    iso_at(amounts_seq.t, np.ones(len(amounts_seq), dtype=bool)),
                    amounts_seq.eid,
                    amounts_seq.cols["cents"],
                ],
            )
        )
        cap = self.p["max_addresses"]
        for acct in sorted(accounts):
            old = profile[acct]
            state: dict[str, Any] = {
                "v": PROFILE_VERSION,
                "n": n_seen.get(acct, int(old.get("n", 0))),
                "a": new_addr_state.get(acct, dict(old.get("a", {}))),
                "b": _bounded(book.get("state", {}).get(acct, dict(old.get("b", {}))), cap),
                "w": [list(x) for x in hist_w[acct]] if acct in hist_w else list(old.get("w", [])),
                "bal": balance.get(acct, old.get("bal")),
                "c": changes["last"].get(acct, old.get("c")),
                "d": devices["state"].get(acct, dict(old.get("d", {}))),
                "k": networks["state"].get(acct, dict(old.get("k", {}))),
                "l": last_login["state"].get(acct, old.get("l")),
                "o": observed.get(acct, old.get("o")),
            }
            result.profiles[acct] = state
        return result

    # -- the judgement ----------------------------------------------------------------------------------
    def _judge(
        self,
        result: DetectorResult,
        wd: pd.DataFrame,
        tx: pd.DataFrame,
        batch: Batch,
        profile: Mapping[str, Mapping[str, Any]],
        has_usd: bool,
        ok: pd.DataFrame | None,
        dev_col: bool,
        net: pd.Series | None,
        devices: Mapping[str, Any],
        networks: Mapping[str, Any],
        book: Mapping[str, Any],
        changes: Mapping[str, Any],
        now: datetime,
    ) -> tuple[Any, dict[str, dict[str, str]], dict[str, int]]:
        p = self.p
        n = len(wd)
        accts = wd["account_id"].astype(str)
        t = pd.Series(to_ns(wd["ts"]), index=wd.index)
        usd = usd_amounts(wd, has_usd)
        for table, col, what in (
            ("transactions", "amount_usd", "non-USD amounts and the balance not valued"),
            ("transactions", "address_whitelisted", "the address book flag not read"),
            ("logins", "device_id", "session device not scored"),
            ("logins", "asn", "session network judged by the IP's /24"),
            ("logins", "ip", "session network not scored without an ASN"),
            ("security_events", "address", "address_added entries not read"),
            ("accounts", "created_at", "account age not scored"),
        ):
            if batch.get(table) is not None and not batch.has_column(table, col):
                result.skips.append(Skip(self.name, f"column {col!r} absent: {what}", n))
        if usd.isna().any():
            result.skips.append(
                Skip(self.name, "USD value unknown: amount and balance not scored", int(usd.isna().sum()))
            )
        factors: dict[str, np.ndarray] = {}
        texts: dict[str, list[str | None]] = {}

        # address
        has_addr = batch.has_column("transactions", "address")
        addr = normalise_addresses(wd["address"]) if has_addr else pd.Series(pd.NA, index=wd.index, dtype="string")
        if not has_addr:
            result.skips.append(Skip(self.name, "column 'address' absent: address not scored", n))
        seen_before = {a: int(profile[a].get("n", 0)) for a in accts.unique()}
        n_prior = accts.map(seen_before).astype(np.int64) + wd.groupby(accts, sort=False).cumcount()
        a_ok = addr.notna()
        prev_t = pd.Series(np.nan, index=wd.index)
        if a_ok.any():
            prev_t[a_ok] = previous_use(accts[a_ok], addr[a_ok].astype(str), t[a_ok], profile)
        used = (prev_t.notna() & ((t - prev_t) < p["window_days"] * NS_PER_DAY)).to_numpy()
        added = self._added(accts, addr, t, book)
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

        # amount against the account's usual withdrawals
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
        mean.loc[labels] = np.where(
            win.count[newrows] > 0, win.total[newrows] / np.maximum(win.count[newrows], 1), np.nan
        )
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

        # share of the balance
        before = _balance_before(tx, has_usd, profile, wd.index)
        share = np.where(priced & (before > 0), usd_c / np.where(before > 0, before, 1.0), np.nan)
        share[share > 1.0] = np.nan  # more than the flows seen: the balance began before them, unknown
        s90, s50, s20 = (float(x) for x in p["share_factors"])
        f_share = np.where(
            np.isnan(share),
            1.0,
            np.where(share >= 0.9, s90, np.where(share >= 0.5, s50, np.where(share >= 0.2, s20, p["small_share"]))),
        )
        factors["share"] = f_share
        texts["share"] = [None if np.isnan(share[i]) else f"{min(share[i], 9.99):.0%} of the balance" for i in range(n)]

        # security change
        ch_t, ch_kind = _asof(accts, t, changes["frame"], ("kind",))
        hours = (t.to_numpy(dtype=np.float64) - ch_t) / NS_PER_HOUR
        ch = p["change_hours"]
        f_ch = np.where(
            np.isnan(hours) | (hours > 3 * ch),
            1.0,
            np.where(hours <= ch, p["change_factor"], p["change_factor"] ** 0.5),
        )
        factors["change"] = f_ch
        texts["change"] = [None if f_ch[i] == 1.0 else f"{ch_kind[i]} {hours[i]:.1f} h before" for i in range(n)]

        # the session: last successful login before the withdrawal
        observed_from = _observed(ok, profile)
        sess = last_login_frame(ok, ok["device_id"] if dev_col and ok is not None else None, net, profile)
        l_t, l_dev, l_net = _asof(accts, t, sess, ("device", "net"))
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
            firsts = _lookup_first(accts, vals, seen)
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

        # account age
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

        log10 = np.zeros(n)
        for f in factors.values():
            log10 += np.log10(f)
        flagged = np.flatnonzero(log10 >= p["min_log10_score"])
        acct_arr, t_arr, eid = accts.to_numpy(), t.to_numpy(), wd["event_id"].astype(str).to_numpy()
        asset, amount = wd["asset"].astype(str).to_numpy(), wd["amount"].astype("float64").to_numpy()
        addr_arr = np.array([None if pd.isna(x) else str(x) for x in addr.tolist()], dtype=object)
        for i in flagged.tolist():
            feats: dict[str, dict[str, Any]] = {
                k: {"factor": round(float(v[i]), 3), "text": texts.get(k, [None] * n)[i]} for k, v in factors.items()
            }
            odds = p["prior_odds"] * 10 ** min(float(log10[i]), 300)
            parts = [
                f"{d['text']} (×{_fmt(d['factor'])})"
                for _, d in sorted(feats.items(), key=lambda kv: -kv[1]["factor"])
                if d["factor"] >= 1.5 and d["text"]
            ]
            result.findings.append(
                self.finding(
                    acct_arr[i],
                    ts_of(t_arr[i]),
                    key=str(eid[i]),
                    kind="score",
                    score=min(1.0, max(0.0, float(log10[i])) / 4.0),
                    event_ids=[eid[i]],
                    evidence={
                        "log10_score": round(float(log10[i]), 3),
                        "probability": round(odds / (1 + odds), 4),
                        "factors": feats,
                        "top_feature": max(feats, key=lambda k: feats[k]["factor"]),
                        "text": " · ".join(parts) or "several weak signals",
                        "address": addr_arr[i],
                        "new_address": bool(a_known[i] and not (used[i] or in_book[i])),
                        "asset": asset[i],
                        "amount": float(amount[i]),
                        "amount_usd": None if not priced[i] else round(usd_c[i] / 100, 2),
                        "multiple_of_usual": None if np.isnan(mult[i]) else round(float(mult[i]), 2),
                        "share_of_balance": None if np.isnan(share[i]) else round(float(share[i]), 3),
                        "hours_after_change": None if f_ch[i] == 1.0 else round(float(hours[i]), 2),
                        "hours_after_login": None if not in_session[i] else round(float(since_login[i]), 2),
                        "account_age_days": None if np.isnan(age_d[i]) else round(float(age_d[i]), 1),
                    },
                )
            )
        # address memory and counts, for the next batch
        remembered: dict[str, dict[str, str]] = {}
        if a_ok.any():
            remembered = remember(
                accts[a_ok], addr[a_ok].astype(str), t[a_ok], profile, p["window_days"] * NS_PER_DAY, p["max_addresses"]
            )
        counts = accts.value_counts()
        n_seen = {a: int(profile[a].get("n", 0)) + int(counts[a]) for a in counts.index}
        return seq, remembered, n_seen

    # -- inputs ---------------------------------------------------------------------------------------
    def _book(self, sec: pd.DataFrame | None, batch: Batch, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Address-book entries (account, address, added ns): profile plus the batch's ``address_added``."""
        rows: list[tuple[str, str, int]] = []
        for a, prof in profile.items():
            for ad, iso in prof.get("b", {}).items():
                rows.append((a, ad, int(iso_to_ns([iso])[0])))
        frame = pd.DataFrame(rows, columns=["a", "ad", "t"])
        if sec is not None and batch.has_column("security_events", "address"):
            adds = sec[sec["kind"] == "address_added"]
            if len(adds):
                ad = normalise_addresses(adds["address"])
                keep = ad.notna()
                fresh = pd.DataFrame(
                    {
                        "a": adds["account_id"].astype(str)[keep].to_numpy(),
                        "ad": ad[keep].astype(str).to_numpy(),
                        "t": to_ns(adds["ts"])[keep.to_numpy()],
                    }
                )
                frame = pd.concat([frame, fresh], ignore_index=True) if len(frame) else fresh
        state: dict[str, dict[str, str]] = {}
        if len(frame):
            latest = frame.groupby(["a", "ad"], sort=True)["t"].max().reset_index()
            isos = ns_to_iso(latest["t"].to_numpy(dtype=np.int64))
            for a, ad, iso in zip(latest["a"], latest["ad"], isos, strict=True):
                state.setdefault(str(a), {})[str(ad)] = iso
        return {"frame": frame, "state": state}

    def _added(self, accts: pd.Series, addr: pd.Series, t: pd.Series, book: Mapping[str, Any]) -> np.ndarray:
        """Time (ns, NaN when never) of the latest address-book entry of (account, address) at or before t."""
        out = np.full(len(accts), np.nan)
        frame = book["frame"]
        if not len(frame):
            return out
        q = pd.DataFrame(
            {"a": accts.to_numpy(), "ad": addr.astype(object).to_numpy(), "t": t.to_numpy(), "i": np.arange(len(t))}
        )
        q = q[q["ad"].notna()]
        if q.empty:
            return out
        q["ad"] = q["ad"].astype(str)
        b = frame.assign(tb=frame["t"]).sort_values("t", kind="mergesort")
        m = pd.merge_asof(q.sort_values("t", kind="mergesort"), b, on="t", by=["a", "ad"], direction="backward")
        out[m["i"].to_numpy()] = m["tb"].to_numpy(dtype=np.float64)
        return out

    def _changes(self, sec: pd.DataFrame | None, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        rows = [(a, int(iso_to_ns([prof["c"][0]])[0]), prof["c"][1]) for a, prof in profile.items() if prof.get("c")]
        frame = pd.DataFrame(rows, columns=["a", "t", "kind"])
        if sec is not None:
            ch = sec[sec["kind"].isin(self.p["change_kinds"])]
            if len(ch):
                fresh = pd.DataFrame(
                    {
                        "a": ch["account_id"].astype(str).to_numpy(),
                        "t": to_ns(ch["ts"]),
                        "kind": ch["kind"].astype(str).to_numpy(),
                    }
                )
                frame = pd.concat([frame, fresh], ignore_index=True) if len(frame) else fresh
        last: dict[str, list[str]] = {}
        if len(frame):
            top = frame.sort_values(["a", "t", "kind"], kind="mergesort").groupby("a", sort=False).tail(1)
            isos = ns_to_iso(top["t"].to_numpy(dtype=np.int64))
            last = {str(a): [iso, str(k)] for a, iso, k in zip(top["a"], isos, top["kind"], strict=True)}
        return {"frame": frame, "last": last}


# -- helpers ----------------------------------------------------------------------------------------------
def _fmt(f: float) -> str:
    return f"{f:.1f}" if f < 10 else f"{f:,.0f}"


def _bounded(d: dict[str, str], cap: int) -> dict[str, str]:
    if len(d) <= cap:
        return d
    return dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]))[-cap:])


def _networks(ok: pd.DataFrame, batch: Batch) -> pd.Series | None:
    """The login's network: its ASN where known, else its IP's /24 (IPv4) or /48 (IPv6)."""
    out = pd.Series(None, index=ok.index, dtype=object)
    if batch.has_column("logins", "asn"):
        asn = pd.to_numeric(ok["asn"].astype("object"), errors="coerce")
        has = asn.notna()
        out[has] = "AS" + asn[has].astype("int64").astype(str)
    if batch.has_column("logins", "ip"):
        ip = ok["ip"].astype("object")
        need = out.isna() & ip.notna()
        if need.any():
            s = ip[need].astype(str)
            v4 = s.str.contains(".", regex=False)
            out[need & v4.reindex(ok.index, fill_value=False)] = s[v4].str.rsplit(".", n=1).str[0]
            out[need & ~v4.reindex(ok.index, fill_value=True)] = s[~v4].str.split(":").str[:3].str.join(":")
    if not out.notna().any():
        return None
    return out


def _first_last(
    ok: pd.DataFrame | None, values: pd.Series | None, profile: Mapping[str, Mapping[str, Any]], key: str
) -> dict[str, Any]:
    """First and last use of each (account, value): the profile's merged with the batch's logins."""
    rows = [
        (a, v, int(iso_to_ns([fl[0]])[0]), int(iso_to_ns([fl[1]])[0]))
        for a, prof in profile.items()
        for v, fl in prof.get(key, {}).items()
    ]
    frame = pd.DataFrame(rows, columns=["a", "v", "first", "last"])
    if ok is not None and values is not None:
        has = values.notna().to_numpy()
        if has.any():
            t = to_ns(ok["ts"])[has]
            fresh = pd.DataFrame(
                {
                    "a": ok["account_id"].astype(str).to_numpy()[has],
                    "v": values.astype(object).to_numpy()[has].astype(str),
                    "first": t,
                    "last": t,
                }
            )
            frame = pd.concat([frame, fresh], ignore_index=True) if len(frame) else fresh
    state: dict[str, dict[str, list[str]]] = {}
    if len(frame):
        frame = frame.groupby(["a", "v"], sort=True).agg(first=("first", "min"), last=("last", "max")).reset_index()
        keep = frame.sort_values(["a", "last", "v"], ascending=[True, False, True], kind="mergesort")
        keep = keep[keep.groupby("a").cumcount() < MAX_DEVICES]
        f_iso = ns_to_iso(keep["first"].to_numpy(dtype=np.int64))
        l_iso = ns_to_iso(keep["last"].to_numpy(dtype=np.int64))
        for a, v, fi, la in zip(keep["a"], keep["v"], f_iso, l_iso, strict=True):
            state.setdefault(str(a), {})[str(v)] = [fi, la]
    return {"frame": frame, "state": state}


def last_login_frame(
    ok: pd.DataFrame | None, dev: pd.Series | None, net: pd.Series | None, profile: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Successful logins (account, t, device, net): the profile's last one plus the batch's."""
    rows = [
        (a, int(iso_to_ns([prof["l"][0]])[0]), prof["l"][1], prof["l"][2])
        for a, prof in profile.items()
        if prof.get("l")
    ]
    frame = pd.DataFrame(rows, columns=["a", "t", "device", "net"])
    if ok is not None:
        fresh = pd.DataFrame(
            {
                "a": ok["account_id"].astype(str).to_numpy(),
                "t": to_ns(ok["ts"]),
                "device": None if dev is None else np.array([_plain(x) for x in dev.tolist()], dtype=object),
                "net": None if net is None else net.to_numpy(),
                "eid": ok["event_id"].astype(str).to_numpy(),
            }
        )
        frame = pd.concat([frame.assign(eid=""), fresh], ignore_index=True) if len(frame) else fresh
    return frame


def _last_login(
    ok: pd.DataFrame | None, dev: pd.Series | None, net: pd.Series | None, profile: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    frame = last_login_frame(ok, dev, net, profile)
    state: dict[str, list[Any]] = {}
    if len(frame):
        if "eid" not in frame.columns:
            frame = frame.assign(eid="")
        top = frame.sort_values(["a", "t", "eid"], kind="mergesort").groupby("a", sort=False).tail(1)
        isos = ns_to_iso(top["t"].to_numpy(dtype=np.int64))
        for a, iso, d, n in zip(top["a"], isos, top["device"], top["net"], strict=True):
            state[str(a)] = [iso, _plain(d), _plain(n)]
    return {"state": state}


def _observed(ok: pd.DataFrame | None, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """account -> the first successful login seen (ns): the profile's, else the batch's earliest."""
    out = {a: float(iso_to_ns([prof["o"]])[0]) for a, prof in profile.items() if prof.get("o")}
    if ok is not None:
        first = pd.Series(to_ns(ok["ts"]), index=ok.index).groupby(ok["account_id"].astype(str).to_numpy()).min()
        for a, v in first.items():
            out[str(a)] = min(out.get(str(a), float(v)), float(v))
    return out


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _asof(accts: pd.Series, t: pd.Series, frame: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """For each (account, t): the time (ns float, NaN for none) and ``cols`` of the latest row of
    ``frame`` (columns a, t, ...) at or before t (ties: the last in (t, eid) order)."""
    n = len(accts)
    t_out = np.full(n, np.nan)
    outs = [np.full(n, None, dtype=object) for _ in cols]
    if not len(frame):
        return (t_out, *outs)
    sort_cols = ["t", "eid"] if "eid" in frame.columns else ["t"]
    f = frame.assign(tf=frame["t"]).sort_values(sort_cols, kind="mergesort")
    f = f.drop_duplicates(["a", "t"], keep="last")
    q = pd.DataFrame({"a": accts.to_numpy(), "t": t.to_numpy(), "i": np.arange(n)}).sort_values("t", kind="mergesort")
    m = pd.merge_asof(q, f[["a", "t", "tf", *cols]], on="t", by="a", direction="backward")
    idx = m["i"].to_numpy()
    t_out[idx] = m["tf"].to_numpy(dtype=np.float64)
    for o, c in zip(outs, cols, strict=True):
        o[idx] = m[c].to_numpy(dtype=object)
    return (t_out, *outs)


def _lookup_first(accts: pd.Series, vals: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    out = np.full(len(accts), np.nan)
    if not len(frame):
        return out
    firsts = {(str(a), str(v)): float(f) for a, v, f in zip(frame["a"], frame["v"], frame["first"], strict=True)}
    acc = accts.to_numpy()
    for i, v in enumerate(vals):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[i] = firsts.get((str(acc[i]), str(v)), np.nan)
    return out


def _flows(tx: pd.DataFrame | None, has_usd: bool) -> pd.DataFrame:
    """Signed USD cents of every valued flow in and out, sorted by (account, ts, event_id)."""
    if tx is None:
        return pd.DataFrame(columns=["a", "t", "eid", "c", "lab"])
    f = tx[tx["kind"].isin((*IN_KINDS, *OUT_KINDS))]
    usd = usd_amounts(f, has_usd)
    f, usd = f[usd.notna()], usd[usd.notna()]
    sign = np.where(f["kind"].isin(IN_KINDS).to_numpy(), 1, -1)
    out = pd.DataFrame(
        {
            "a": f["account_id"].astype(str).to_numpy(),
            "t": to_ns(f["ts"]),
            "eid": f["event_id"].astype(str).to_numpy(),
            "c": sign * to_cents(usd.to_numpy(dtype=np.float64)),
            "lab": f.index.to_numpy(),
        }
    )
    return out.sort_values(["a", "t", "eid"], kind="mergesort").reset_index(drop=True)


def _balance_before(
    tx: pd.DataFrame, has_usd: bool, profile: Mapping[str, Mapping[str, Any]], index: pd.Index
) -> np.ndarray:
    """The running balance (USD cents, float; NaN when unknown) just before each row of ``index``."""
    f = _flows(tx, has_usd)
    out = pd.Series(np.nan, index=index)
    if f.empty:
        return out.to_numpy()
    start = pd.to_numeric(f["a"].map(lambda a: profile.get(a, {}).get("bal")), errors="coerce").astype("float64")
    known_start = start.notna()
    cum = f.groupby("a", sort=False)["c"].cumsum() - f["c"]
    seen_before = f.groupby("a", sort=False).cumcount() > 0
    before = cum + start.fillna(0.0)
    before = before.where(known_start | seen_before)
    sel = f["lab"].isin(index)
    out.loc[f.loc[sel, "lab"].to_numpy()] = before[sel].to_numpy(dtype=np.float64)
    return out.to_numpy()


def _balance(tx: pd.DataFrame | None, has_usd: bool, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    f = _flows(tx, has_usd)
    if f.empty:
        return {}
    sums = f.groupby("a", sort=True)["c"].sum()
    return {str(a): int(profile.get(str(a), {}).get("bal") or 0) + int(s) for a, s in sums.items()}
