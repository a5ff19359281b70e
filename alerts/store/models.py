"""SQLAlchemy 2.x models for the engine's state and the canonical source tables.

Engine tables carry the ``vigil_`` prefix.  The canonical source tables (``logins``, ...) are what
``vigil import`` fills in the engine's own database; their columns are text so that ingest
validates every source the same way and quarantines what does not parse.

The Alembic migration in ``alerts/store/migrations`` is generated from these models
(``python -m alerts.store.regen``); a test checks that they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from detectors.contract import TABLES

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every database (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Vigil stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class PackedJSON(TypeDecorator[Any]):
    """JSON values stored as compact bytes (orjson): smaller than JSON text and several times faster
    to load, which is what a scan cycle does with thousands of profiles.  Same values as JSON: keys
    become strings, tuples lists."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        return None if value is None else pack_json(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else unpack_json(value)


PACK_OPTIONS = 1 << 2 | 1 << 5  # orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS (orjson imported on use)


def pack_json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value, option=PACK_OPTIONS)


def unpack_json(data: bytes | memoryview) -> Any:
    import orjson

    return orjson.loads(bytes(data) if isinstance(data, memoryview) else data)


Id = String(64)
TS = UTCDateTime()
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Cursor(Base):
    """How far each source has been read: ``state`` = {"pos": ..., "gaps": {...}}."""

    __tablename__ = "vigil_cursors"
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime | None] = mapped_column(TS)


class ShardLease(Base):
    """Who scans one account shard (``vigil/shards.py``); shard -1 is the cross-account detectors'.

    A replica renews its leases with heartbeats; a lease whose ``expires_at`` passed is free for any
    replica to take.  Only used when ``scan.shards`` > 0 (PostgreSQL).
    """

    __tablename__ = "vigil_shard_leases"
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[datetime | None] = mapped_column(TS)
    heartbeat_at: Mapped[datetime | None] = mapped_column(TS)
    expires_at: Mapped[datetime | None] = mapped_column(TS)


class Replica(Base):
    """A scanner replica's last heartbeat: the live ones share the shards between them."""

    __tablename__ = "vigil_replicas"
    replica_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(TS)
    heartbeat_at: Mapped[datetime] = mapped_column(TS)
    shards: Mapped[list[Any]] = mapped_column(default=list)


class Profile(Base):
    """Per-account, per-detector baseline; ``version`` increments on every change (an unchanged state
    is not written again).  ``state`` is packed JSON (:class:`PackedJSON`)."""

    __tablename__ = "vigil_profiles"
    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    detector: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(PackedJSON(), default=dict)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime | None] = mapped_column(TS)


class SeenEvent(Base):
    """Events already fed to the detectors, so a rewound cursor or a second import of the same file
    never feeds them again (their effect is in the profiles already; ``vigil/ledger.py``).  ``key`` is a 128-bit hash of
    (table, event_id): fixed width whatever the operator's ids look like."""

    __tablename__ = "vigil_seen_events"
    key: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    # the run that fed it: the record of a scan is the record of what it read, so deleting the runs
    # (starting over from scratch) forgets these too
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("vigil_runs.id", ondelete="CASCADE"), index=True)


class FindingRow(Base):
    __tablename__ = "vigil_findings"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    detector: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    ts: Mapped[datetime] = mapped_column(TS)
    kind: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    event_ids: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(TS)


class AlertRow(Base):
    __tablename__ = "vigil_alerts"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_hash: Mapped[str] = mapped_column(String(64), default="")
    detector: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16), default="live")
    status: Mapped[str] = mapped_column(String(32), index=True)
    ts: Mapped[datetime] = mapped_column(TS, index=True)
    finding_ids: Mapped[list[Any]] = mapped_column(default=list)
    event_ids: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    template: Mapped[str] = mapped_column(String(64), default="")
    channels: Mapped[list[Any]] = mapped_column(default=list)
    # a snapshot of the rule's notify settings and answer actions, taken when the alert is created,
    # so a later rule edit never changes what an open alert does (OnCall's escalation snapshot)
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    throttle_key: Mapped[str | None] = mapped_column(String(256), index=True)
    group_key: Mapped[str | None] = mapped_column(String(256))
    sms_code: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(TS)
    answered_at: Mapped[datetime | None] = mapped_column(TS)
    answer: Mapped[str | None] = mapped_column(String(16))
    escalation_step: Mapped[int] = mapped_column(default=0)
    ticket_id: Mapped[str | None] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    version: Mapped[int] = mapped_column(default=1)

    __table_args__ = (Index("ix_vigil_alerts_rule_throttle_ts", "rule_id", "throttle_key", "ts"),)


class AlertEvent(Base):
    """Audit of everything that happened to an alert (lifecycle moves, coalesced findings)."""

    __tablename__ = "vigil_alert_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(Id, ForeignKey("vigil_alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(TS)
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128), default="system")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxRow(Base):
    __tablename__ = "vigil_outbox"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    alert_id: Mapped[str | None] = mapped_column(Id, ForeignKey("vigil_alerts.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32), default="alert")
    template: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(default=5)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(TS, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(160))  # the claim's token: worker identity + claim number
    lease_until: Mapped[datetime | None] = mapped_column(TS)
    provider_id: Mapped[str | None] = mapped_column(String(256), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS)
    delivered_at: Mapped[datetime | None] = mapped_column(TS)


class Delivery(Base):
    """One attempt to send one outbox message (or one receipt), with the provider's answer.

    A transmission's row is written *before* the provider call (status ``sending``, then
    ``in_flight`` once the message is handed over) and updated with the answer: a worker that dies
    mid-call leaves the row behind, and whoever takes the message over reconciles instead of
    sending blindly (``delivery.transmit``)."""

    __tablename__ = "vigil_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[str] = mapped_column(Id, ForeignKey("vigil_outbox.id"), index=True)
    attempt: Mapped[int] = mapped_column()
    channel: Mapped[str] = mapped_column(String(32))
    transport: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(256))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(TS)
    worker: Mapped[str | None] = mapped_column(String(160))  # host:pid:random of the sending worker
    finished_at: Mapped[datetime | None] = mapped_column(TS)


class ConfirmToken(Base):
    """A confirmation link token, stored as its SHA-256 only; single use, expiring."""

    __tablename__ = "vigil_confirm_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    alert_id: Mapped[str] = mapped_column(Id, ForeignKey("vigil_alerts.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)
    used_at: Mapped[datetime | None] = mapped_column(TS)
    used_action: Mapped[str | None] = mapped_column(String(16))


class Ticket(Base):
    """A support ticket.  ``open_key`` = "account:category" while open, NULL once resolved:
    the unique constraint keeps one open ticket per account and category."""

    __tablename__ = "vigil_tickets"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(4))
    queue: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    assignee: Mapped[str | None] = mapped_column(String(128))
    locale: Mapped[str | None] = mapped_column(String(16))
    first_response_due: Mapped[datetime | None] = mapped_column(TS)
    resolve_due: Mapped[datetime | None] = mapped_column(TS)
    first_response_at: Mapped[datetime | None] = mapped_column(TS)
    resolved_at: Mapped[datetime | None] = mapped_column(TS)
    sla_state: Mapped[str] = mapped_column(String(16), default="ok")
    resolution_code: Mapped[str | None] = mapped_column(String(32))
    classifier_confidence: Mapped[float | None] = mapped_column(Float)
    # the most negative sentiment the holder's words on this ticket scored (-1..1), and why it was
    # flagged for staff ("negative", "keyword:lawyer"); see tickets/sentiment.py
    sentiment: Mapped[float | None] = mapped_column(Float)
    sentiment_flag: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    version: Mapped[int] = mapped_column(default=1)


class TicketEvent(Base):
    """The ticket timeline: alerts, messages, receipts, answers, freezes, staff actions."""

    __tablename__ = "vigil_ticket_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(Id, ForeignKey("vigil_tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(TS)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128), default="system")
    ref_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (UniqueConstraint("ticket_id", "kind", "ref_id", name="uq_vigil_ticket_events_ref"),)


class QuarantineRow(Base):
    __tablename__ = "vigil_quarantine"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    row_ref: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(TS)


class AccountRow(Base):
    """The engine's mirror of an account: contact data from the source, status owned here."""

    __tablename__ = "vigil_accounts"
    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime | None] = mapped_column(TS)
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    push_token: Mapped[str | None] = mapped_column(String(512))
    tier: Mapped[str | None] = mapped_column(String(32))
    anti_phishing_code: Mapped[str | None] = mapped_column(String(64))
    source_status: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    frozen_at: Mapped[datetime | None] = mapped_column(TS)
    frozen_reason: Mapped[str | None] = mapped_column(Text)
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_bad: Mapped[bool] = mapped_column(Boolean, default=False)
    survey_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(TS)


class ContactChange(Base):
    """A change of an account's phone number, email address or push device (``kind`` phone, email,
    push), seen in ``security_events`` or in the account mirror.  ``previous`` is the contact it
    replaced, when known: alerts go there too for a while, and the new one cannot confirm yet."""

    __tablename__ = "vigil_contact_changes"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(TS)
    previous: Mapped[str | None] = mapped_column(String(512))
    current: Mapped[str | None] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(TS)


class AccountEvent(Base):
    """The account's audit trail: every freeze and unfreeze, by whom, when and why."""

    __tablename__ = "vigil_account_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[datetime] = mapped_column(TS)
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128), default="system")
    reason: Mapped[str] = mapped_column(Text, default="")
    alert_id: Mapped[str | None] = mapped_column(Id)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Run(Base):
    """One run of a daemon job: what it read and produced, and any gap it caught up."""

    __tablename__ = "vigil_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(TS)
    finished_at: Mapped[datetime | None] = mapped_column(TS)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RuleSetRow(Base):
    """Every rule set applied (or refused), with its content hash, for audit."""

    __tablename__ = "vigil_rule_sets"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    rules: Mapped[list[Any]] = mapped_column(default=list)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    at: Mapped[datetime] = mapped_column(TS)


class Suppression(Base):
    """A user-declared suppression (travel notice, allow-listed address) with its expiry."""

    __tablename__ = "vigil_suppressions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)
    created_by: Mapped[str] = mapped_column(String(128), default="user")
    created_at: Mapped[datetime] = mapped_column(TS)


class StaffUser(Base):
    """A person who uses the staff console: role viewer, analyst or admin; an argon2 password hash."""

    __tablename__ = "vigil_staff"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS)
    last_login_at: Mapped[datetime | None] = mapped_column(TS)


class StaffSession(Base):
    """A console session: the cookie holds a random token, the database only its SHA-256."""

    __tablename__ = "vigil_staff_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(BigId, ForeignKey("vigil_staff.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(TS)
    last_seen_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)
    revoked_at: Mapped[datetime | None] = mapped_column(TS)


class StaffAudit(Base):
    """Every action taken in the console (and by ``vigil staff``): who, what, on what, when."""

    __tablename__ = "vigil_staff_audit"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TS, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_kind: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class Survey(Base):
    """One satisfaction survey for one resolved ticket: asked on the ticket's channel, answered once
    by a single-use link (stored as SHA-256) or an SMS reply carrying ``sms_code``."""

    __tablename__ = "vigil_surveys"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[str] = mapped_column(Id, ForeignKey("vigil_tickets.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(64), default="")
    category: Mapped[str] = mapped_column(String(32), default="")
    agent: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    sms_code: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[int | None] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    sentiment: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS)
    answered_at: Mapped[datetime | None] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)


class RateBucket(Base):
    """A provider's token bucket, shared by every delivery worker on this database
    (``delivery.ratelimit``): one row per provider, taken from in one atomic ``UPDATE``."""

    __tablename__ = "vigil_rate_buckets"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(TS)
    blocked_until: Mapped[datetime | None] = mapped_column(TS)  # after a provider's 429


def _source_table(name: str) -> type[Base]:
    cols: dict[str, Any] = {
        "__tablename__": name,
        "ingest_seq": mapped_column(BigId, primary_key=True, autoincrement=True),
        "__annotations__": {"ingest_seq": Mapped[int]},
    }
    for col in TABLES[name].columns:
        cols[col.name] = mapped_column(Text, nullable=True)
        cols["__annotations__"][col.name] = Mapped[str | None]
    cls_name = "Src" + "".join(p.title() for p in name.split("_"))
    return type(cls_name, (Base,), cols)


SOURCE_MODELS: dict[str, type[Base]] = {name: _source_table(name) for name in TABLES}
Index("ix_accounts_account_id", SOURCE_MODELS["accounts"].__table__.c.account_id)  # type: ignore[attr-defined]
