"""What ``withdrawal_risk`` reads besides the withdrawals: the address book, security changes, the
sessions (devices, networks, the last successful login) and the running balance -- each from the
batch merged with the account's profile.  Frames use short columns: ``a`` account, ``t`` time (ns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from detectors.batch import Batch
from detectors.large_withdrawal import OUT_KINDS, usd_amounts
from detectors.new_address import normalise_addresses
from detectors.sequence import iso_to_ns, ns_to_iso, to_cents, to_ns

IN_KINDS = ("deposit", "transfer_in")
MAX_DEVICES = 50


def address_book(sec: pd.DataFrame | None, batch: Batch, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
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


def added_at(accts: pd.Series, addr: pd.Series, t: pd.Series, book: Mapping[str, Any]) -> np.ndarray:
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


def security_changes(
    sec: pd.DataFrame | None, profile: Mapping[str, Mapping[str, Any]], change_kinds: Any
) -> dict[str, Any]:
    """Security changes (account, t, kind): the profile's last one plus the batch's ``change_kinds``."""
    rows = [(a, int(iso_to_ns([prof["c"][0]])[0]), prof["c"][1]) for a, prof in profile.items() if prof.get("c")]
    frame = pd.DataFrame(rows, columns=["a", "t", "kind"])
    if sec is not None:
        ch = sec[sec["kind"].isin(change_kinds)]
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


def bounded(d: dict[str, str], cap: int) -> dict[str, str]:
    if len(d) <= cap:
        return d
    return dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]))[-cap:])


def networks_of(ok: pd.DataFrame, batch: Batch) -> pd.Series | None:
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


def first_last(
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
                "device": None if dev is None else np.array([plain(x) for x in dev.tolist()], dtype=object),
                "net": None if net is None else net.to_numpy(),
                "eid": ok["event_id"].astype(str).to_numpy(),
            }
        )
        frame = pd.concat([frame.assign(eid=""), fresh], ignore_index=True) if len(frame) else fresh
    return frame


def last_login(
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
            state[str(a)] = [iso, plain(d), plain(n)]
    return {"state": state}


def observed(ok: pd.DataFrame | None, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """account -> the first successful login seen (ns): the profile's, else the batch's earliest."""
    out = {a: float(iso_to_ns([prof["o"]])[0]) for a, prof in profile.items() if prof.get("o")}
    if ok is not None:
        first = pd.Series(to_ns(ok["ts"]), index=ok.index).groupby(ok["account_id"].astype(str).to_numpy()).min()
        for a, v in first.items():
            out[str(a)] = min(out.get(str(a), float(v)), float(v))
    return out


def plain(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def asof(accts: pd.Series, t: pd.Series, frame: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, ...]:
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


def lookup_first(accts: pd.Series, vals: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    out = np.full(len(accts), np.nan)
    if not len(frame):
        return out
    firsts = {(str(a), str(v)): float(f) for a, v, f in zip(frame["a"], frame["v"], frame["first"], strict=True)}
    acc = accts.to_numpy()
    for i, v in enumerate(vals):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[i] = firsts.get((str(acc[i]), str(v)), np.nan)
    return out


def flows(tx: pd.DataFrame | None, has_usd: bool) -> pd.DataFrame:
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


def balance_before(
    tx: pd.DataFrame, has_usd: bool, profile: Mapping[str, Mapping[str, Any]], index: pd.Index
) -> np.ndarray:
    """The running balance (USD cents, float; NaN when unknown) just before each row of ``index``."""
    f = flows(tx, has_usd)
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


def balance(tx: pd.DataFrame | None, has_usd: bool, profile: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    f = flows(tx, has_usd)
    if f.empty:
        return {}
    sums = f.groupby("a", sort=True)["c"].sum()
    return {str(a): int(profile.get(str(a), {}).get("bal") or 0) + int(s) for a, s in sums.items()}
