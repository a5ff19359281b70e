"""An export's own column names, mapped onto the contract: ``source.tables.NAME.columns``.

The same ``tables: … columns:`` mapping serves the SQL source and data directories.  For a file
two special values exist, for exports that lack a column outright:

* ``"=VALUE"`` -- the same value in every row (``success: "=true"``, ``kind: "=withdrawal"``);
* ``"@hash"`` -- an ``event_id`` derived from each row's values (stable across re-exports of the
  same rows; two identical rows get the same id and the second is quarantined as a duplicate).

When required columns are missing, :class:`MappingError` names every one of them with a guess
from the file's own headers (names, common synonyms, then spelling) and ends with the YAML
snippet to paste, so a new user never has to read code to get their export in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import pandas as pd

from confkit import closest
from detectors.contract import TABLES

HASH = "@hash"
UNKNOWN = "???"
SYNONYMS: dict[str, tuple[str, ...]] = {
    "event_id": ("id", "event", "uuid", "login_id", "log_id", "record_id", "tx_id", "txid", "txn_id",
                 "transaction_id", "order_id", "trade_id", "position_id", "ledger_id", "audit_id"),
    "account_id": ("user_id", "userid", "uid", "user", "customer_id", "client_id", "member_id", "account",
                   "acct_id", "account_no", "account_number", "owner_id"),
    "ts": ("timestamp", "time", "datetime", "date", "created_at", "event_time", "login_time", "occurred_at",
           "happened_at", "created", "time_utc", "updated_at", "executed_at", "ts_ms"),
    "success": ("ok", "succeeded", "successful", "is_success", "result", "login_result", "outcome", "status"),
    "ip": ("ip_address", "ipaddress", "client_ip", "remote_ip", "remote_addr", "source_ip", "src_ip", "ip_addr"),
    "country": ("country_code", "geo_country", "cc", "country_iso", "nation"),
    "city": ("geo_city", "city_name", "town"),
    "lat": ("latitude",),
    "lon": ("longitude", "lng", "long"),
    "asn": ("as_number", "asnum", "isp_asn", "as"),
    "device_id": ("device", "device_fingerprint", "fingerprint", "deviceid", "device_uuid"),
    "user_agent": ("ua", "useragent", "agent", "browser"),
    "channel": ("platform", "client", "client_type", "login_channel"),
    "is_anonymous_ip": ("anonymous", "is_proxy", "is_vpn", "proxy", "vpn", "is_tor"),
    "kind": ("type", "event_type", "tx_type", "transaction_type", "category", "action", "direction"),
    "asset": ("coin", "currency", "token", "ccy", "asset_symbol"),
    "amount": ("qty", "quantity", "value", "size", "volume", "amt"),
    "amount_usd": ("usd", "usd_value", "value_usd", "amount_in_usd", "usd_amount"),
    "address": ("to_address", "destination", "wallet_address", "dest_address", "withdraw_address", "to_addr"),
    "network": ("chain", "blockchain", "protocol"),
    "symbol": ("pair", "market", "instrument", "contract", "ticker"),
    "side": ("buy_sell", "order_side"),
    "leverage": ("lev", "leverage_ratio", "multiplier"),
    "margin_ratio": ("mmr", "margin_level", "maint_margin_ratio"),
    "notional_usd": ("notional", "position_value", "position_value_usd"),
    "locale": ("language", "lang", "preferred_language"),
    "timezone": ("tz", "time_zone"),
    "phone": ("mobile", "phone_number", "msisdn", "cell", "tel"),
    "email": ("mail", "email_address", "e_mail"),
    "push_token": ("fcm_token", "device_token", "apns_token", "push_id"),
    "tier": ("vip_level", "level", "vip", "user_level"),
    "created_at": ("registered_at", "signup_time", "registration_time", "created", "register_time"),
    "status": ("account_status", "state"),
}
# a file that is not a contract table, and what it probably is: (table, constant kind or None)
FILE_HINTS: dict[str, tuple[str, str | None]] = {
    "withdrawal": ("transactions", "withdrawal"), "withdraw": ("transactions", "withdrawal"),
    "deposit": ("transactions", "deposit"), "trade": ("transactions", "trade"), "fill": ("transactions", "trade"),
    "order": ("transactions", "trade"), "transfer": ("transactions", None), "ledger": ("transactions", None),
    "transaction": ("transactions", None), "tx": ("transactions", None),
    "login": ("logins", None), "signin": ("logins", None), "sign_in": ("logins", None), "auth": ("logins", None),
    "session": ("logins", None), "user": ("accounts", None), "customer": ("accounts", None),
    "member": ("accounts", None), "account": ("accounts", None), "position": ("positions", None),
    "security": ("security_events", None), "audit": ("security_events", None),
}


class MappingError(Exception):
    """A table's file cannot be mapped onto the contract; the message says how to fix it."""


@dataclass(frozen=True)
class Plan:
    """Where each canonical column of one table comes from."""

    table: str
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> the file's column
    constants: dict[str, str] = field(default_factory=dict)
    hashed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # the file's columns no canonical column takes


def norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _score(canon: str, header: str) -> float:
    h = norm(header)
    if h == canon:
        return 1.0
    syn = SYNONYMS.get(canon, ())
    if h in syn:
        return 0.9
    best = max(SequenceMatcher(None, h, x).ratio() for x in (canon, *syn))
    return best * 0.8 if best >= 0.8 else 0.0


def guesses(table: str, headers: Iterable[str], wanted: Iterable[str]) -> dict[str, str]:
    """canonical -> the file's column that most likely holds it (each column used once)."""
    pairs = sorted(((s, c, h) for c in wanted for h in headers if (s := _score(c, h)) > 0),
                   key=lambda x: (-x[0], x[1], x[2]))
    out: dict[str, str] = {}
    used: set[str] = set()
    for _s, c, h in pairs:
        if c not in out and h not in used:
            out[c] = h
            used.add(h)
    return out


def plan(table: str, headers: list[str], columns: Mapping[str, str], *, filename: str, where: str,
         mapped_table: str | None = None, specials: bool = True) -> Plan:
    """The table's plan, or :class:`MappingError` naming every missing column with a guess."""
    contract = TABLES[table]
    unknown = [k for k in columns if k not in contract.names]
    problems: list[str] = []
    for k in unknown:
        close = closest(k, contract.names)
        problems.append(f"{where}.columns.{k}: not a column of the contract table {table!r}"
                        + (f"; did you mean {close!r}?" if close else f" (known: {', '.join(contract.names)})"))
    chosen: dict[str, str] = {}
    constants: dict[str, str] = {}
    hashed: list[str] = []
    for canon, src in columns.items():
        if canon in unknown:
            continue
        if specials and src.startswith("="):
            constants[canon] = src[1:]
        elif specials and src == HASH:
            hashed.append(canon)
        elif src in headers:
            chosen[canon] = src
        else:
            close = closest(src, headers) or next(iter(guesses(table, headers, [canon]).values()), None)
            problems.append(f"{where}.columns.{canon}: column {src!r} is not in {filename}"
                            + (f"; did you mean {close!r}?" if close else ""))
    for canon in contract.names:
        if canon not in chosen and canon not in constants and canon not in hashed and canon in headers \
                and canon not in columns and headers.count(canon) == 1 and canon not in chosen.values():
            chosen[canon] = canon
    missing = [c for c in contract.required if c not in chosen and c not in constants and c not in hashed]
    if problems or missing:
        raise MappingError(_help(table, headers, dict(columns), chosen, missing, problems, filename, mapped_table,
                                 specials))
    taken = set(chosen.values())
    return Plan(table, chosen, constants, tuple(hashed), tuple(h for h in headers if h not in taken))


def apply(p: Plan, df: pd.DataFrame) -> pd.DataFrame:
    """The file's frame with canonical column names (plus the reader's ``_`` columns)."""
    out = pd.DataFrame({canon: df[src] for canon, src in p.columns.items()}, index=df.index)
    for canon, value in p.constants.items():
        out[canon] = value
    if p.hashed:
        values = df[[c for c in df.columns if not str(c).startswith("_")]]
        digest = pd.util.hash_pandas_object(values.astype("string"), index=False).to_numpy()
        ids = pd.Series(digest, index=df.index).map("{:016x}".format)
        for canon in p.hashed:
            out[canon] = "h-" + ids
    for c in df.columns:
        if str(c).startswith("_"):
            out[c] = df[c]
    return out


def _help(table: str, headers: list[str], given: dict[str, str], chosen: dict[str, str], missing: list[str],
          problems: list[str], filename: str, mapped_table: str | None, specials: bool = True) -> str:
    contract = TABLES[table]
    lines = list(problems)
    free = [h for h in headers if h not in chosen.values() and h not in given.values()]
    guess = guesses(table, free, [c for c in contract.names if c not in chosen and c not in given])
    proposal: dict[str, tuple[str, str]] = {}  # canonical -> (value, comment)
    if missing:
        lines.append(f"{filename}: required column(s) missing: {', '.join(missing)}")
    for c in missing:
        if c in guess:
            lines.append(f"  {c}: did you mean {guess[c]!r}?")
            proposal[c] = (guess[c], "")
        elif c == "event_id" and specials:
            lines.append(f"  {c}: no column looks like it; \"{HASH}\" derives one from each row's values")
            proposal[c] = (HASH, "no id column: derived from each row's values")
        elif c == "success" and table == "logins" and specials:
            lines.append(f"  {c}: no column looks like it; \"=true\" if the file holds successful logins only")
            proposal[c] = ("=true", "no such column: every row is a successful login")
        else:
            lines.append(f"  {c}: no column looks like it")
            proposal[c] = (UNKNOWN, "name the column that holds it")
    lines.append(f"The columns of {filename}: {', '.join(headers) or '(none)'}")
    entries = {**{c: (v, "") for c, v in given.items() if c in contract.names}, **proposal}
    for c, h in guess.items():
        if c not in entries and c not in contract.required:
            entries[c] = (h, "")
    lines.append("Map them in the configuration file (vigil --config FILE …), for example:")
    lines.append("")
    lines.append(snippet(table, entries, mapped_table))
    return "\n".join(lines)


def snippet(table: str, entries: Mapping[str, tuple[str, str]], mapped_table: str | None = None) -> str:
    """The YAML to paste: ``source.tables.TABLE`` with its ``columns`` (required ones first)."""
    order = {c: i for i, c in enumerate(TABLES[table].names)}
    out = ["source:", "  tables:", f"    {table}:"]
    if mapped_table:
        out.append(f"      table: {_yaml(mapped_table)}")
    out.append("      columns:")
    for c in sorted(entries, key=lambda c: order.get(c, 99)):
        value, comment = entries[c]
        out.append(f"        {c}: {_yaml(value)}" + (f"   # {comment}" if comment else ""))
    return "\n".join(out)


def _yaml(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) else json.dumps(s, ensure_ascii=False)


def suggest_file(stem: str) -> str | None:
    """What a file that is not a contract table might be: ``withdrawals`` -> transactions, kind=withdrawal."""
    n = norm(stem)
    words = [w.rstrip("s") for w in n.split("_")] + [n.rstrip("s")]
    for w in words:
        if w in FILE_HINTS:
            table, kind = FILE_HINTS[w]
            break
    else:
        guess = closest(n, list(TABLES), loose=False)
        if guess is None:
            return None
        table, kind = guess, None
    cols: dict[str, tuple[str, str]] = {"kind": (f"={kind}", "")} if kind else {}
    what = f"{table}.csv with kind={kind}" if kind else f"{table}.csv"
    hint = snippet(table, cols, stem) if cols else f"source.tables.{table}.table: {_yaml(stem)}"
    return f"did you mean {what}? Rename it, or map it:\n{hint}"
