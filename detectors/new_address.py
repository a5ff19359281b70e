"""Withdrawal to an address the account has not withdrawn to within ``window_days``.

The exchanges' own control is the allow-list with a lock on new addresses (OKX "new address
withdrawal lock", 24 h; research/fraud-anchors.md b14): a takeover ends with money sent to an
address the victim never used.  An address is *known* when an earlier withdrawal of the same
account (in ``(ts, event_id)`` order) went to it within the window.  EVM addresses (``0x...``)
compare case-insensitively; other formats as given.

Kinds: ``new_address`` once the account has ``min_history`` earlier withdrawals with an address;
``first_address`` before that (the first withdrawal of an account always goes somewhere new, which
says less, so rules can treat it apart).

Profile (bounded): ``{"v": 1, "n": withdrawals_seen, "a": {address: last_used_ts}}`` with at most
``max_addresses`` addresses (default 500, ~40 KB), the most recently used ones within the window.
The bound is the detector's only approximation: an account that used more than ``max_addresses``
distinct addresses within the window forgets the least recently used ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.large_withdrawal import OUT_KINDS, usd_amounts
from detectors.sequence import (
    NS_PER_DAY,
    PROFILE_VERSION,
    iso_to_ns,
    ns_to_iso,
    records,
    state_of,
    to_ns,
    ts_of,
)


def normalise_addresses(s: pd.Series) -> pd.Series:
    """Stripped addresses; EVM hex addresses lower-cased; blanks become NA (once per distinct value)."""

    def norm(u: pd.Series) -> pd.Series:
        text = u.astype("string").str.strip()
        evm = text.str.match(r"^0[xX][0-9a-fA-F]+$").fillna(False).astype(bool)
        text = text.where(~evm, text.str.lower())
        return text.where(text.str.len() > 0)

    codes, uniq = pd.factorize(s)
    out = pd.array([pd.NA] * len(s), dtype="string")
    if len(uniq):
        table = norm(pd.Series(uniq)).array
        has = codes >= 0
        out[has] = table[codes[has]]
    return pd.Series(out, index=s.index)


class NewAddress(Detector):
    name = "new_address"
    family = "transfer"
    table = "transactions"
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("address", "network", "amount_usd")
    description = "A withdrawal to an address the account has not used within the window."
    params: ClassVar[Mapping[str, Param]] = {
        "window_days": Param(
            365, "An address used for a withdrawal within this many days is known.", kind=int, ge=1, le=3650
        ),
        "min_history": Param(
            1,
            "Earlier withdrawals needed before a new address is 'new_address' rather than 'first_address'.",
            kind=int,
            ge=1,
            le=100,
        ),
        "min_usd": Param(
            0.0,
            "Ignore withdrawals below this USD value (a withdrawal whose USD value is unknown "
            "is always judged: missing a takeover is worse than one extra question).",
            ge=0,
        ),
        "max_addresses": Param(
            500, "Profile bound: most recently used addresses remembered.", kind=int, ge=1, le=5000
        ),
        "kinds": Param(
            ("withdrawal",), "Transaction kinds that count as withdrawals.", kind=list, choices=OUT_KINDS
        ),
    }

    def _check_params(self) -> None:
        if not self.p["kinds"]:
            raise ParameterError("The 'kinds' parameter of NewAddress must name at least one kind.")

    def scan(
        self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime
    ) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        wd = df[df["kind"].isin(self.p["kinds"])]
        if wd.empty:
            return result
        if not batch.has_column(self.table, "address"):
            result.skips.append(
                Skip(self.name, "column 'address' absent: new addresses not checked", len(wd))
            )
            return result
        addr = normalise_addresses(wd["address"])
        missing = addr.isna()
        if missing.any():
            result.skips.append(Skip(self.name, "withdrawal without an address", int(missing.sum())))
        wd = wd.assign(_addr=addr)[~missing]
        if wd.empty:
            return result
        window = self.p["window_days"] * NS_PER_DAY
        accts = wd["account_id"].astype(str)
        t = pd.Series(to_ns(wd["ts"]), index=wd.index)

        prev_t = previous_use(accts, wd["_addr"], t, profiles)
        known = prev_t.notna() & ((t - prev_t) < window)
        seen_before = {a: int(state_of(profiles, a).get("n", 0)) for a in accts.unique()}
        n_prior = accts.map(seen_before).astype(np.int64) + wd.groupby(accts, sort=False).cumcount()
        usd = usd_amounts(wd, batch.has_column(self.table, "amount_usd"))
        big_enough = (usd >= self.p["min_usd"]) | usd.isna()
        flag = ~known & big_enough

        pos = np.flatnonzero(flag.to_numpy())
        rows = records(wd, wd.index[pos].to_numpy(), ("event_id", "_addr", "network", "asset", "amount"))
        t_arr, acct_arr, n_arr = t.to_numpy(), accts.to_numpy(), n_prior.to_numpy()
        usd_arr, prev_arr = usd.to_numpy(dtype=np.float64), prev_t.to_numpy(dtype=np.float64)
        for k, row in zip(pos.tolist(), rows, strict=True):
            tv = t_arr[k]
            acct = acct_arr[k]
            warm = int(n_arr[k]) >= self.p["min_history"]
            value = usd_arr[k]
            score = (0.5 if warm else 0.3) + (
                0.0 if pd.isna(value) else min(0.3, 0.3 * float(value) / 10_000)
            )
            last = prev_arr[k]
            result.findings.append(
                self.finding(
                    acct,
                    ts_of(tv),
                    key=str(row["event_id"]),
                    kind="new_address" if warm else "first_address",
                    score=score,
                    event_ids=[row["event_id"]],
                    evidence={
                        "address": row["_addr"],
                        "network": row.get("network"),
                        "asset": row["asset"],
                        "amount": row["amount"],
                        "amount_usd": None if pd.isna(value) else round(float(value), 2),
                        "prior_withdrawals": int(n_arr[k]),
                        "window_days": self.p["window_days"],
                        "last_used": None if pd.isna(last) else ns_to_iso(np.array([int(last)]))[0],
                    },
                )
            )
        remembered = remember(accts, wd["_addr"], t, profiles, window, self.p["max_addresses"])
        counts = accts.value_counts()
        for acct, addresses in remembered.items():
            n = int(state_of(profiles, acct).get("n", 0)) + int(counts[acct])
            result.profiles[acct] = {"v": PROFILE_VERSION, "n": n, "a": addresses}
        return result


def _profile_addresses(profiles: Mapping[str, Mapping[str, Any]], accounts: Any) -> pd.DataFrame:
    rows = [(a, ad, iso) for a in accounts for ad, iso in state_of(profiles, a).get("a", {}).items()]
    out = pd.DataFrame(rows, columns=["a", "ad", "iso"])
    out["t"] = iso_to_ns(list(out["iso"])) if len(out) else np.zeros(0, dtype=np.int64)
    return out


def previous_use(
    accts: pd.Series, addr: pd.Series, t: pd.Series, profiles: Mapping[str, Mapping[str, Any]]
) -> pd.Series:
    """Time (ns, float with NaN for never) of the account's previous withdrawal to the same address:
    the previous row of the batch, else the profile's last use."""
    prev_t = t.groupby([accts, addr], sort=False).shift(1).astype("float64")
    first_use = prev_t.isna()
    if first_use.any():
        known = _profile_addresses(profiles, accts[first_use].unique())
        if len(known):
            q = pd.DataFrame({"a": accts[first_use], "ad": addr[first_use]})
            looked = (
                q.reset_index().merge(known[["a", "ad", "t"]], on=["a", "ad"], how="left").set_index("index")
            )
            prev_t.loc[first_use] = looked["t"].reindex(prev_t.index[first_use]).astype("float64")
    return prev_t


def remember(
    accts: pd.Series,
    addr: pd.Series,
    t: pd.Series,
    profiles: Mapping[str, Mapping[str, Any]],
    window: int,
    cap: int,
) -> dict[str, dict[str, str]]:
    """The new ``{address: last_used}`` per account: profile and batch merged, the most recently
    used ``cap`` addresses within ``window`` of the account's latest use."""
    fresh = pd.DataFrame({"a": accts, "ad": addr, "t": t})
    old = _profile_addresses(profiles, accts.unique())
    both = pd.concat([old[["a", "ad", "t"]], fresh], ignore_index=True) if len(old) else fresh
    last = both.groupby(["a", "ad"], sort=False)["t"].max().reset_index()
    latest = last.groupby("a")["t"].transform("max")
    last = last[last["t"] > latest - window]
    last = last.sort_values(["a", "t", "ad"], ascending=[True, False, True], kind="mergesort")
    last = last[last.groupby("a").cumcount() < cap]
    isos = ns_to_iso(last["t"].to_numpy(dtype=np.int64))
    out: dict[str, dict[str, str]] = {str(a): {} for a in accts.unique()}
    for a, ad, iso in zip(last["a"], last["ad"], isos, strict=True):
        out[str(a)][str(ad)] = iso
    return out
