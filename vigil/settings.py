"""Settings: one YAML file plus ``VIGIL_*`` environment variables (which win).

Nested keys use a double underscore in the environment:
``VIGIL_CHANNELS__EMAIL__PASSWORD=...``.  Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

import confkit
from delivery.policy import PolicySettings
from delivery.ratelimit import store_problems
from delivery.settings import Channels, DeliverySettings, HookSettings
from notifiers.branding import BrandingSettings
from tickets.helpdesk import WebhookHelpdeskSettings, ZendeskSettings
from tickets.surveys import SurveySettings
from vigil.errors import ConfigError
from vigil.web.console.settings import ConsoleSettings
from vigil.web.hook_settings import TwilioHookSettings

__all__ = ["Channels", "DeliverySettings", "HookSettings", "Settings", "load_settings"]

DEFAULT_DB = "sqlite:///vigil.db"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableMap(Strict):
    """Where one canonical table lives in a source, and how its columns are named (docs/input-contract.md)."""

    table: str | None = Field(None, description="the source's table, or a data directory's file name; "
                                                "default: the canonical name")
    columns: dict[str, str] = Field(default_factory=dict, description="canonical name -> source column")
    cursor: str = Field("ingest_seq", description="a monotonic column: an id or an insertion timestamp")
    cursor_kind: Literal["int", "ts"] = "int"
    ts_unit: Literal["s", "ms", "us", "ns"] | None = Field(
        None, description="epoch numbers' unit; default: milliseconds, or seconds when below 1e11")
    ts_format: str | None = Field(None, description="a strftime layout for other timestamp text, e.g. %d/%m/%Y %H:%M")
    encoding: str | None = Field(None, description="a data file's text encoding when it is not UTF-8")


class SourceSettings(Strict):
    kind: Literal["engine", "sql", "files"] = "engine"
    url: str | None = Field(None, description="read-only URL for kind=sql")
    path: str | None = Field(None, description="data directory for kind=files")
    tables: dict[str, TableMap] = Field(default_factory=dict)
    settle_seconds: int = Field(5, ge=0, description="timestamp cursors read rows older than this")
    gap_grace_seconds: int = Field(600, ge=0, description="how long a gap in an id cursor is re-checked")


class WebSettings(Strict):
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr = SecretStr("")
    staff_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="staff API bearer tokens by name (the name is the actor); none: disabled")
    suppression_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="bearer tokens of the suppressions feed by name; none: disabled")
    message_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="bearer tokens of the in-app messages feed by name; none: disabled")
    metrics_token: SecretStr = Field(SecretStr(""), description="bearer token for /metrics and /openapi.json on "
                                                                "the public listener; empty: open (or internal)")
    internal_host: str = "127.0.0.1"
    internal_port: int | None = Field(None, description="serve /metrics and /openapi.json only on this port")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    twilio: TwilioHookSettings = Field(default_factory=TwilioHookSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @field_validator("staff_tokens", "suppression_tokens", "message_tokens")
    @classmethod
    def _named_tokens(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        import re

        from vigil.web.credentials import MIN_LENGTH

        for name, tok in v.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name):
                raise ValueError(f"token name {name!r}: letters, digits, '_', '.', '@', '-'")
            if len(tok.get_secret_value()) < MIN_LENGTH:
                raise ValueError(f"the token named {name!r} has fewer than {MIN_LENGTH} characters")
        return v

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, v: SecretStr) -> SecretStr:
        from vigil.web.credentials import MIN_LENGTH

        if v.get_secret_value() and len(v.get_secret_value()) < MIN_LENGTH:
            raise ValueError(f"needs at least {MIN_LENGTH} characters")
        return v


class AnswerSettings(Strict):
    """How long "not me" is heard, and how long a changed contact is treated as suspect."""

    deny_grace_seconds: int = Field(6 * 3600, ge=0, le=7 * 24 * 3600, description="'not me' (link, push, "
                                    "SMS) still freezes this long after the alert expired")
    previous_contact_days: float = Field(7, ge=0, le=90, description="after a phone or email change, alerts "
                                         "also go to the previous contact, and the new one cannot confirm")


class DaemonSettings(Strict):
    scan_every_seconds: int = Field(60, ge=1)
    deliver_every_seconds: int = Field(10, ge=1)
    escalate_every_seconds: int = Field(60, ge=1)
    rules_reload_seconds: int = Field(30, ge=1, description="how often the rule directory is re-validated")
    batch_rows: int = Field(200_000, ge=1)
    max_batches_per_run: int = Field(50, ge=1)


class ScanSettings(Strict):
    """Sharded live scanners (``vigil/shards.py``, docs/operations.md "Running N scanner replicas")."""

    shards: int = Field(0, ge=0, le=4096, description="split accounts into this many shards leased by "
                        "replicas (PostgreSQL); 0: one scanner at a time under one lock")
    lease_seconds: float = Field(30, gt=0, le=3600, description="a replica that sent no heartbeat for this "
                                 "long loses its shards to the others")
    replica_id: str | None = Field(None, max_length=120, description="this replica's name in `vigil status`; "
                                   "default host:pid")


class GeoSettings(Strict):
    """IP and place enrichment of logins (docs/configuration.md#geo)."""

    enabled: bool = True
    mmdb_city: str | None = Field(None, description="a MaxMind-format City .mmdb file")
    mmdb_asn: str | None = Field(None, description="a MaxMind-format ASN .mmdb file")


class ModelSettings(Strict):
    """A learned-detector model the operator vouches for: where it is and the SHA-256 it must have."""

    path: str = Field(description="a skops file written by `vigil model fit`")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="printed by `vigil model fit`; checked "
                                                                  "before the file is read")


class SuppressionSettings(Strict):
    allowlist_step_up: bool = Field(False, description="the exchange requires step-up authentication (2FA "
                                    "again) to change the withdrawal allow-list: rules marked "
                                    "'suppressible: step_up' may then be muted by allow-listed addresses")


class TicketSettings(Strict):
    policy_path: str | None = Field(None, description="queues, routing, SLA and escalation YAML")
    model_path: str | None = Field(None, description="a saved ticket classifier (vigil tickets train --out)")
    helpdesk: ZendeskSettings | WebhookHelpdeskSettings | None = Field(None, discriminator="kind")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = Field(
        "development", description="production: https only, no console stand-ins (docs/configuration.md)")
    database_url: str = DEFAULT_DB
    rules_path: str | None = Field(None, description="rule file or directory; default: the shipped pack")
    source: SourceSettings = Field(default_factory=SourceSettings)
    channels: Channels = Field(default_factory=Channels)
    web: WebSettings = Field(default_factory=WebSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    scan: ScanSettings = Field(default_factory=ScanSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    answers: AnswerSettings = Field(default_factory=AnswerSettings)
    suppressions: SuppressionSettings = Field(default_factory=SuppressionSettings)
    tickets: TicketSettings = Field(default_factory=TicketSettings)
    geo: GeoSettings = Field(default_factory=GeoSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    hooks: HookSettings = Field(default_factory=HookSettings)
    models: dict[str, ModelSettings] = Field(
        default_factory=dict, description="learned-detector models by name (a rule set chooses one by name)")
    branding: BrandingSettings = Field(default_factory=BrandingSettings)
    surveys: SurveySettings = Field(default_factory=SurveySettings)
    default_locale: str = "en"
    default_timezone: str = "UTC"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line, with fields")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return _sources(settings_cls, init_settings, env_settings)

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        found = problems(self)
        if found:
            raise ValueError("\n  ".join(found))
        return self

    @field_validator("models")
    @classmethod
    def _model_names(cls, v: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        import re

        for name in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name):
                raise ValueError(f"model name {name!r}: use lower-case letters, digits, '_', '.', '-'")
        return v

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(v.replace("-", "_"))
        except (ValueError, UnknownLocaleError) as e:
            raise ValueError(f"unknown locale {v!r}") from e
        return v


_FILE: ContextVar[Mapping[str, Any] | None] = ContextVar("vigil_settings_file", default=None)


class YamlFileSource(PydanticBaseSettingsSource):
    """The settings file as a pydantic-settings source (read by :func:`load_settings`, with positions).

    Sources, strongest first: the caller's overrides, ``VIGIL_*`` environment variables, this file,
    the defaults; pydantic-settings merges nested sections key by key.
    """

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self.data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _sources(settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
             env_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
    return init_settings, env_settings, YamlFileSource(settings_cls, _FILE.get() or {})


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (``--config`` or ``VIGIL_CONFIG``), then the environment, then overrides.

    Every problem is reported at once, in the configuration toolkit's words: at ``path:line:col``
    when the value came from the file, else as ``environment``.
    """
    path = path or os.environ.get("VIGIL_CONFIG")
    doc: Any = None
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: configuration file not found")
        try:
            doc = confkit.read_yaml(p, what="a mapping of settings")
        except confkit.ConfigFileError as e:
            raise ConfigError("\n".join(str(i) for i in e.issues)) from None
    token = _FILE.set(confkit.plain(doc) if doc is not None else {})
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        found = confkit.issues(e, Settings, doc=doc, path=str(path or ""), noun="setting", exact=True)
        lines = [str(i if i.line else replace(i, path="environment")) for i in found]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    finally:
        _FILE.reset(token)
    if not settings.web.secret_key.get_secret_value():
        settings.web.secret_key = SecretStr(_local_secret(settings))
    return settings


def _local_secret(settings: Settings) -> str:
    """No secret configured: derive a stable per-database secret stored beside SQLite, or fail."""
    import secrets

    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        p = Path(url.removeprefix("sqlite:///") + ".secret")
        if not p.exists():
            p.write_text(secrets.token_urlsafe(32))
            p.chmod(0o600)
        return p.read_text().strip()
    return secrets.token_urlsafe(32)


# -- settings that are unsafe outside development, refused when the settings load ---------------
#
# ``environment: production`` (``VIGIL_ENVIRONMENT=production``) promises real deployments:
#
# * every URL Vigil puts in a message or calls -- ``web.base_url`` (the confirmation links),
#   Twilio's public URL, the freeze/staff/named hooks, the webhook channel, the helpdesk -- must be
#   ``https://``: a plain-HTTP confirmation link or hook leaks tokens and signed payloads;
# * the console channel never stands in for an unconfigured channel (a message that would have
#   gone to a phone is printed to a log instead), and TLS verification stays on.
#
# In every environment, SMTP credentials travel only over TLS (``starttls`` or ``use_ssl``), except
# to a relay on this machine.  The console channel itself is a demo and development channel: with
# any real channel configured it is off unless the settings name it (``delivery.settings.effective_console``).


def _urls(s: Settings) -> Iterator[tuple[str, str | None]]:
    yield "web.base_url", s.web.base_url
    yield "web.twilio.public_url", s.web.twilio.public_url
    yield "hooks.freeze.url", s.hooks.freeze.url if s.hooks.freeze.enabled else None
    yield "hooks.staff.url", s.hooks.staff.url if s.hooks.staff.enabled else None
    for name, hook in s.hooks.named.items():
        yield f"hooks.named.{name}.url", hook.url if hook.enabled else None
    yield "channels.webhook.url", s.channels.webhook.url if s.channels.webhook.enabled else None
    desk: Any = s.tickets.helpdesk
    if desk is not None:
        key = "base_url" if hasattr(desk, "base_url") else "url"
        yield f"tickets.helpdesk.{key}", getattr(desk, key, None)


def loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def problems(s: Settings) -> list[str]:
    """Every unsafe setting, each as ``key: what to do``."""
    out: list[str] = []
    if s.environment == "production":
        for key, url in _urls(s):
            if url and url.lower().startswith("http://"):
                out.append(f"{key}: http:// is refused outside development settings (environment: production); "
                           "use https://")
        console = s.channels.console
        if "stand_in_for" in console.model_fields_set and console.stand_in_for:
            out.append("channels.console.stand_in_for: the console never stands in for a real channel in "
                       "production settings; configure the channel or remove it from the rules")
        if not s.channels.email.verify_tls:
            out.append("channels.email.verify_tls: TLS verification cannot be turned off in production settings")
    email = s.channels.email
    if email.enabled and (email.username or email.password) and not (email.starttls or email.use_ssl) \
            and not loopback(email.host):
        out.append("channels.email: SMTP credentials are sent only over TLS; set starttls: true (port 587) or "
                   "use_ssl: true (port 465)")
    out.extend(store_problems(s.policy, s.database_url))  # where the providers' rate buckets live
    return out
