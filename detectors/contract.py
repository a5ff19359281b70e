"""The input contract: canonical tables and columns (docs/input-contract.md).

Operators map their own table and column names onto these in configuration.  Timestamps are UTC
(ISO 8601 with an offset, or epoch milliseconds).  ``Column.kind`` drives parsing in ingest:
``str``, ``ts`` (timestamp), ``bool``, ``float``, ``int``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "str"
    required: bool = False
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    # tables with events carry event_id and ts; ``accounts`` is a dimension table
    is_event: bool = True

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


TX_KINDS = ("deposit", "withdrawal", "trade", "transfer_in", "transfer_out")
SECURITY_KINDS = (
    "password_change",
    "2fa_reset",
    "2fa_disabled",
    "email_change",
    "phone_change",
    "api_key_created",
    "whitelist_change",
    "anti_phishing_change",
    "address_added",
)
LOGIN_CHANNELS = ("web", "app", "api")

ACCOUNTS = Table(
    "accounts",
    (
        Column("account_id", required=True),
        Column("created_at", "ts"),
        Column("locale"),
        Column("timezone"),
        Column("phone"),
        Column("email"),
        Column("push_token"),
        Column("tier"),
        Column("anti_phishing_code"),
        Column("status"),
    ),
    is_event=False,
)
LOGINS = Table(
    "logins",
    (
        Column("event_id", required=True),
        Column("account_id", required=True),
        Column("ts", "ts", required=True),
        Column("success", "bool", required=True),
        Column("ip"),
        Column("country"),
        Column("city"),
        Column("lat", "float"),
        Column("lon", "float"),
        Column("asn", "int"),
        Column("device_id"),
        Column("user_agent"),
        Column("channel", choices=LOGIN_CHANNELS),
        Column("is_anonymous_ip", "bool"),
    ),
)
TRANSACTIONS = Table(
    "transactions",
    (
        Column("event_id", required=True),
        Column("account_id", required=True),
        Column("ts", "ts", required=True),
        Column("kind", required=True, choices=TX_KINDS),
        Column("asset", required=True),
        Column("amount", "float", required=True),
        Column("amount_usd", "float"),
        Column("address"),
        Column("network"),
        Column("symbol"),
        Column("side"),
        Column("address_whitelisted", "bool"),
    ),
)
POSITIONS = Table(
    "positions",
    (
        Column("event_id", required=True),
        Column("account_id", required=True),
        Column("ts", "ts", required=True),
        Column("symbol", required=True),
        Column("leverage", "float", required=True),
        Column("margin_ratio", "float"),
        Column("notional_usd", "float"),
        Column("unrealized_pnl_usd", "float"),
        Column("liquidation_price", "float"),
        Column("mark_price", "float"),
    ),
)
SECURITY_EVENTS = Table(
    "security_events",
    (
        Column("event_id", required=True),
        Column("account_id", required=True),
        Column("ts", "ts", required=True),
        Column("kind", required=True, choices=SECURITY_KINDS),
        Column("ip"),
        Column("device_id"),
        Column("address"),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (ACCOUNTS, LOGINS, TRANSACTIONS, POSITIONS, SECURITY_EVENTS)
}
EVENT_TABLES = tuple(name for name, t in TABLES.items() if t.is_event)
