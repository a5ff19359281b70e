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

Modules: the inputs besides the withdrawals (address book, changes, sessions, balance) are read in
:mod:`detectors.withdrawal_inputs`, the factors computed in :mod:`detectors.withdrawal_factors`,
the evidence written in :mod:`detectors.withdrawal_evidence`; this module holds the parameters,
the profile and the order of the steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors import withdrawal_factors as wf
from detectors import withdrawal_inputs as wi
from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.contract import SECURITY_KINDS
from detectors.large_withdrawal import OUT_KINDS, usd_amounts
from detectors.new_address import normalise_addresses, remember
from detectors.sequence import (
    NS_PER_DAY,
    PROFILE_VERSION,
    iso_at,
    keep_recent,
    ns_to_iso,
    per_account,
    state_of,
    to_ns,
    ts_of,
)
from detectors.withdrawal_after_change import TAKEOVER_KINDS
from detectors.withdrawal_evidence import evidence
from detectors.withdrawal_inputs import IN_KINDS, MAX_DEVICES

CHANGE_KINDS = (*TAKEOVER_KINDS, "whitelist_change")
__all__ = ["CHANGE_KINDS", "FEATURES", "IN_KINDS", "MAX_DEVICES", "WithdrawalRisk"]
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
        net = wi.networks_of(ok, batch) if ok is not None else None
        devices = wi.first_last(ok, ok["device_id"] if dev_col and ok is not None else None, profile, "d")
        networks = wi.first_last(ok, net, profile, "k")
        book = wi.address_book(sec, batch, profile)
        changes = wi.security_changes(sec, profile, self.p["change_kinds"])
        observed = {a: ns_to_iso(np.array([int(v)]))[0] for a, v in wi.observed(ok, profile).items()}
        last_login = wi.last_login(ok, ok["device_id"] if dev_col and ok is not None else None, net, profile)

        amounts_seq = None
        new_addr_state: dict[str, dict[str, str]] = {}
        n_seen: dict[str, int] = {}
        if wd is not None and tx is not None:
            amounts_seq, new_addr_state, n_seen = self._judge(
                result, wd, tx, batch, profile, has_usd, ok, dev_col, net, devices, networks, book, changes, now
            )
        balance = wi.balance(tx, has_usd, profile)
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
                "b": wi.bounded(book.get("state", {}).get(acct, dict(old.get("b", {}))), cap),
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
        has_addr = batch.has_column("transactions", "address")
        addr = normalise_addresses(wd["address"]) if has_addr else pd.Series(pd.NA, index=wd.index, dtype="string")
        if not has_addr:
            result.skips.append(Skip(self.name, "column 'address' absent: address not scored", n))

        # the features, in this order (the score sums their log10 factors in it)
        s = wf.Scoring(p, wd, accts, t, profile)
        wf.address(s, addr, batch, book)
        seq = wf.amount(s, usd)
        wf.share(s, tx, has_usd)
        wf.change(s, changes)
        wf.session(s, ok, dev_col, net, devices, networks)
        wf.age(s, batch)

        log10 = s.log10()
        flagged = np.flatnonzero(log10 >= p["min_log10_score"])
        acct_arr, t_arr, eid = accts.to_numpy(), t.to_numpy(), wd["event_id"].astype(str).to_numpy()
        asset, amount = wd["asset"].astype(str).to_numpy(), wd["amount"].astype("float64").to_numpy()
        addr_arr = np.array([None if pd.isna(x) else str(x) for x in addr.tolist()], dtype=object)
        for i in flagged.tolist():
            result.findings.append(
                self.finding(
                    acct_arr[i],
                    ts_of(t_arr[i]),
                    key=str(eid[i]),
                    kind="score",
                    score=min(1.0, max(0.0, float(log10[i])) / 4.0),
                    event_ids=[eid[i]],
                    evidence=evidence(s, i, float(log10[i]), addr_arr[i], asset[i], float(amount[i])),
                )
            )
        # address memory and counts, for the next batch
        a_ok = addr.notna()
        remembered: dict[str, dict[str, str]] = {}
        if a_ok.any():
            remembered = remember(
                accts[a_ok], addr[a_ok].astype(str), t[a_ok], profile, p["window_days"] * NS_PER_DAY, p["max_addresses"]
            )
        counts = accts.value_counts()
        n_seen = {a: int(profile[a].get("n", 0)) + int(counts[a]) for a in counts.index}
        return seq, remembered, n_seen
