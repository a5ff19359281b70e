"""Settings: one YAML file plus ``VIGIL_*`` environment variables (which win).

Nested keys use a double underscore in the environment:
``VIGIL_CHANNELS__EMAIL__PASSWORD=...``.  Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.helpdesk import WebhookHelpdeskSettings, ZendeskSettings
from notifiers.console import ConsoleConfig
from notifiers.email import EmailConfig
from notifiers.policy import PolicySettings
from notifiers.push import PushConfig
from notifiers.sms import SmsConfig
from notifiers.webhook import WebhookConfig
from vigil.errors import ConfigError
from vigil.web.hook_settings import TwilioHookSettings

DEFAULT_DB = "sqlite:///vigil.db"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableMap(Strict):
    """Where one canonical table lives in an external source, and how its columns are named."""

    table: str
    columns: dict[str, str] = Field(default_factory=dict, description="canonical name -> source column")
    cursor: str = Field("ingest_seq", description="a monotonic column: an id or an insertion timestamp")
    cursor_kind: Literal["int", "ts"] = "int"


class SourceSettings(Strict):
    kind: Literal["engine", "sql", "files"] = "engine"
    url: str | None = Field(None, description="read-only URL for kind=sql")
    path: str | None = Field(None, description="data directory for kind=files")
    tables: dict[str, TableMap] = Field(default_factory=dict)
    settle_seconds: int = Field(5, ge=0, description="timestamp cursors read rows older than this")
    gap_grace_seconds: int = Field(600, ge=0, description="how long a gap in an id cursor is re-checked")


class Channels(BaseModel):
    """Channel settings; each channel validates its own section (``notifiers.<channel>``)."""

    model_config = ConfigDict(extra="forbid")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    push: PushConfig = Field(default_factory=PushConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)


class WebSettings(Strict):
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr = SecretStr("")
    staff_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="staff API bearer tokens by name (the name is the actor); none: disabled")
    suppression_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="bearer tokens of the suppressions feed by name; none: disabled")
    metrics_token: SecretStr = Field(SecretStr(""), description="bearer token for /metrics and /openapi.json on "
                                                                "the public listener; empty: open (or internal)")
    internal_host: str = "127.0.0.1"
    internal_port: int | None = Field(None, description="serve /metrics and /openapi.json only on this port")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    twilio: TwilioHookSettings = Field(default_factory=TwilioHookSettings)

    @field_validator("staff_tokens", "suppression_tokens")
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


class DeliverySettings(Strict):
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(30.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    lease_seconds: int = Field(120, ge=1)


class GeoSettings(Strict):
    """IP and place enrichment of logins (docs/configuration.md#geo)."""

    enabled: bool = True
    mmdb_city: str | None = Field(None, description="a MaxMind-format City .mmdb file")
    mmdb_asn: str | None = Field(None, description="a MaxMind-format ASN .mmdb file")


class HookSettings(Strict):
    """Calls to the exchange's own systems (HMAC-signed JSON POSTs, retried until 2xx)."""

    freeze: WebhookConfig = Field(default_factory=WebhookConfig,
                                  description="the account service's freeze endpoint; off: Vigil's status only")
    staff: WebhookConfig = Field(default_factory=WebhookConfig,
                                 description="where staff escalations go; off: the log (and the console)")
    named: dict[str, WebhookConfig] = Field(
        default_factory=dict, description="webhooks a rule's `webhook: {name: …}` action posts to")


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
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    answers: AnswerSettings = Field(default_factory=AnswerSettings)
    suppressions: SuppressionSettings = Field(default_factory=SuppressionSettings)
    tickets: TicketSettings = Field(default_factory=TicketSettings)
    geo: GeoSettings = Field(default_factory=GeoSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    hooks: HookSettings = Field(default_factory=HookSettings)
    models: dict[str, ModelSettings] = Field(
        default_factory=dict, description="learned-detector models by name (a rule set chooses one by name)")
    default_locale: str = "en"
    default_timezone: str = "UTC"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        from vigil.safety import problems

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


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (``--config`` or ``VIGIL_CONFIG``), then the environment, then overrides."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = path or os.environ.get("VIGIL_CONFIG")
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: configuration file not found")
        try:
            loaded = YAML(typ="safe").load(p.read_text(encoding="utf-8"))
        except YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of settings")
        data = loaded or {}
    try:
        settings = _from_sources(data, overrides)
    except ValidationError as e:
        where = str(path) if path else "environment"
        lines = [f"{where}: " + (f"{'.'.join(str(x) for x in err['loc'])}: " if err["loc"] else "") + _explain(err)
                 for err in e.errors()]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    if not settings.web.secret_key.get_secret_value():
        settings.web.secret_key = SecretStr(_local_secret(settings))
    return settings


def _explain(err: Any) -> str:
    """pydantic's wording, rewritten for people, with a "did you mean" for unknown keys."""
    from difflib import get_close_matches

    if err["type"] != "extra_forbidden":
        return str(err["msg"]).removeprefix("Value error, ")
    model: Any = Settings
    for part in err["loc"][:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        ann = getattr(field, "annotation", None)
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            break
    known = list(getattr(model, "model_fields", {})) if model is not None else []
    close = get_close_matches(str(err["loc"][-1]), known, n=1)
    return "unknown setting" + (f"; did you mean '{close[0]}'?" if close else "")


def _from_sources(data: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    # environment wins over the file: build from env first, then merge the file underneath
    env_only = Settings()
    file_model = Settings.model_validate({**data})
    merged = _deep_merge(file_model.model_dump(exclude_unset=True), env_only.model_dump(exclude_unset=True))
    merged = _deep_merge(merged, overrides)
    return Settings.model_validate(_unwrap_secrets(merged))


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _unwrap_secrets(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _unwrap_secrets(v) for k, v in d.items()}
    if isinstance(d, SecretStr):
        return d.get_secret_value()
    return d


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
