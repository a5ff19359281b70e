"""What a canonical value may be: storage limits read from the models, and sane ranges.

A value the engine's own tables cannot hold (a 200-character ``account_id`` where every engine
table keeps 128) must be quarantined at ingest; otherwise the database refuses the whole scan
transaction and no row after it is ever processed.  The lengths are read from the SQLAlchemy
column types, so a model change moves the limit with it:

* ``account_id`` of every table: the shortest ``account_id`` column of the engine's tables;
* ``accounts.X``: the account mirror's column of the same name (``status`` is kept as
  ``source_status``);
* every other text value: :data:`MAX_TEXT` characters (they are kept in JSON, which has no limit
  of its own, but a megabyte user agent is not an event).

The ranges are plausibility bounds, not storage limits: a latitude of 91, a timestamp in 1970 or
2200, an amount of 1e300 is a broken export, and letting it through poisons baselines and sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pandas as pd
from sqlalchemy import String

from detectors.contract import TABLES

MAX_TEXT = 2048  # characters, for text values no engine column limits
MAX_RAW_CHARS = 512  # a quarantined value is kept up to this many characters
MIN_TS = pd.Timestamp("1990-01-01", tz="UTC")
MAX_TS = pd.Timestamp("2100-01-01", tz="UTC")
# an epoch number below this is seconds: as milliseconds it would fall before 1973-03-03, and as
# seconds it covers every date up to the year 5138
EPOCH_SECONDS_BELOW = 1e11
MIRROR_NAMES = {"status": "source_status"}  # accounts column -> vigil_accounts column


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    lo_open: bool = False  # True: the lower bound itself is out of range

    def describe(self) -> str:
        return f"{'>' if self.lo_open else '≥'} {self.lo:g} and ≤ {self.hi:g}"


MAX_AMOUNT = 1e15  # token quantities (a quadrillion covers meme coins)
MAX_USD = 1e12  # any USD value or price
RANGES: dict[str, Range] = {
    "lat": Range(-90, 90),
    "lon": Range(-180, 180),
    "asn": Range(0, 4_294_967_295),
    "amount": Range(0, MAX_AMOUNT),
    "amount_usd": Range(0, MAX_USD),
    "leverage": Range(0, 10_000, lo_open=True),
    "margin_ratio": Range(0, 1e6),
    "notional_usd": Range(0, MAX_USD),
    "unrealized_pnl_usd": Range(-MAX_USD, MAX_USD),
    "liquidation_price": Range(0, MAX_USD),
    "mark_price": Range(0, MAX_USD),
}


@cache
def text_limits() -> dict[tuple[str, str], int]:
    """(table, column) -> the longest text the engine can store for it, from the models."""
    from alerts.store.models import AccountRow, Base

    def length(col: object) -> int | None:
        t = getattr(col, "type", None)
        return t.length if isinstance(t, String) and t.length else None

    account_lengths = [n for tbl in Base.metadata.tables.values() if tbl.name.startswith("vigil_")
                       for c in tbl.columns if c.name == "account_id" and (n := length(c)) is not None]
    out: dict[tuple[str, str], int] = {}
    mirror = AccountRow.__table__.columns
    for name, table in TABLES.items():
        for col in table.columns:
            if col.kind != "str":
                continue
            limit: int | None = None
            if col.name == "account_id":
                limit = min(account_lengths)
            elif name == "accounts":
                phys = MIRROR_NAMES.get(col.name, col.name)
                limit = length(mirror[phys]) if phys in mirror else None
            out[(name, col.name)] = min(limit or MAX_TEXT, MAX_TEXT)
    return out


@cache
def ref_limit() -> int:
    """How long a row reference (``logins.csv:line 8``) may be in ``vigil_quarantine``."""
    from alerts.store.models import QuarantineRow

    t = QuarantineRow.__table__.columns["row_ref"].type
    return int(getattr(t, "length", 300) or 300)
