"""The webhook channel: a signed JSON POST to the exchange's own systems (httpx).

Every request carries three headers::

    X-Vigil-Delivery:  <outbox id>        same on every retry: the receiver's idempotency key
    X-Vigil-Timestamp: <unix seconds>     when this attempt was signed
    X-Vigil-Signature: v1=<hex>           HMAC-SHA256(secret, "<timestamp>.<raw body>")

During a secret rotation the header carries two signatures (``v1=<new>,v1=<old>``); a receiver
accepts the request if any of them matches one of its secrets.

Verification recipe (the receiver; :func:`verify` does exactly this)::

    ts  = int(headers["X-Vigil-Timestamp"])
    if abs(now - ts) > 300: reject                      # replay window
    mac = hmac.new(secret, f"{ts}.".encode() + raw_body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(mac, s.removeprefix("v1="))
               for s in headers["X-Vigil-Signature"].split(",")): reject
    then drop a delivery id already seen                # retries reuse it

Sign and verify the *raw* bytes, before any JSON parsing.  Responses: 2xx delivered; 408, 425,
429 and 5xx transient (``Retry-After`` honoured); 401/403/404/410 and redirects are operator
problems (wrong URL or secret); any other 4xx is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from notifiers.base import BACKOFF, OPS_ALERT, Channel, ChannelConfig, DeliveryResult, Message

if TYPE_CHECKING:  # imported when a channel is built: loading settings needs only the config model
    import httpx

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
DELIVERY_HEADER = "X-Vigil-Delivery"
TOLERANCE_SECONDS = 300
_OPS_STATUSES = {401, 403, 404, 405, 410}


class WebhookVerificationError(ValueError):
    """The request is not authentic: missing header, stale timestamp or no matching signature."""


class WebhookConfig(ChannelConfig):
    url: str | None = Field(default=None, description="https endpoint of the exchange's receiver")
    secret: SecretStr | None = Field(default=None, description="shared HMAC key, at least 32 characters")
    previous_secret: SecretStr | None = Field(
        default=None, description="old key, also signed with during rotation"
    )
    timeout: float = Field(default=10.0, gt=0, le=120)
    headers: dict[str, str] = Field(default_factory=dict, description="extra static headers")
    ca_file: str | None = None
    verify_tls: bool = True
    include_text: bool = Field(default=True, description="send the rendered subject and text, not only ids")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("a webhook secret must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return v

    @model_validator(mode="after")
    def _complete(self) -> WebhookConfig:
        if self.enabled and (not self.url or not self.secret):
            raise ValueError("the webhook channel is enabled but needs url and secret")
        return self


class WebhookChannel(Channel):
    name: ClassVar[str] = "webhook"
    config_model: ClassVar[type[ChannelConfig]] = WebhookConfig
    idempotent: ClassVar[bool] = True  # receivers drop a delivery id they have seen (X-Vigil-Delivery)

    def __init__(
        self, config: WebhookConfig, *, client: httpx.Client | None = None, clock: Any = time.time
    ) -> None:
        self.config = config
        self._clock = clock
        import httpx

        verify: ssl.SSLContext | bool = config.verify_tls
        if config.ca_file:
            verify = ssl.create_default_context(cafile=config.ca_file)
        self._client = client or httpx.Client(timeout=config.timeout, verify=verify, follow_redirects=False)

    def payload(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "vigil.notification",
            "version": 1,
            "delivery_id": message.outbox_id,
            "alert_id": message.alert_id,
            "account_id": message.recipient.account_id,
            "locale": message.recipient.locale,
            "data": dict(message.data),
        }
        if self.config.include_text:
            body["subject"] = message.subject
            body["text"] = message.text
        return body

    def send(self, message: Message) -> DeliveryResult:
        cfg = self.config
        if not cfg.url or not cfg.secret:
            return DeliveryResult("permanent", error="webhook channel has no url or secret", action=OPS_ALERT)
        raw = json.dumps(self.payload(message), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ts = int(self._clock())
        secrets = [cfg.secret.get_secret_value()]
        if cfg.previous_secret:
            secrets.append(cfg.previous_secret.get_secret_value())
        headers = {
            **cfg.headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "vigil-webhook/1",
            DELIVERY_HEADER: message.outbox_id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: ",".join(sign(s, ts, raw) for s in secrets),
        }
        import httpx

        try:
            resp = self._client.post(cfg.url, content=raw, headers=headers)
        except httpx.HTTPError as e:
            return DeliveryResult("transient", error=f"webhook unreachable: {type(e).__name__}: {e}")
        except Exception as e:
            return DeliveryResult("transient", error=f"unexpected {type(e).__name__}: {e}")
        return classify_response(resp.status_code, resp.headers, message.outbox_id, now=ts)

    def close(self) -> None:
        self._client.close()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "url": self.config.url}


def classify_response(
    status: int, headers: Mapping[str, str], delivery_id: str, *, now: float
) -> DeliveryResult:
    code = str(status)
    if 200 <= status < 300:
        return DeliveryResult("delivered", provider_id=headers.get("X-Request-Id") or delivery_id)
    if status in (408, 425, 429) or status >= 500:
        after = retry_after(headers.get("Retry-After"), now=now)
        return DeliveryResult(
            "transient",
            error_code=code,
            error=f"receiver answered HTTP {status}",
            action=BACKOFF if status == 429 else None,
            retry_after=after,
        )
    if status in _OPS_STATUSES or 300 <= status < 400:
        return DeliveryResult(
            "permanent",
            error_code=code,
            error=f"receiver answered HTTP {status}: check url and secret",
            action=OPS_ALERT,
        )
    return DeliveryResult("permanent", error_code=code, error=f"receiver refused the payload: HTTP {status}")


def retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> int:
    """Check a received webhook; return its timestamp or raise :class:`WebhookVerificationError`.

    ``headers`` is any case-insensitive mapping (or a plain dict with the canonical names).
    """
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    got_ts = _header(headers, TIMESTAMP_HEADER)
    got_sig = _header(headers, SIGNATURE_HEADER)
    if not got_ts or not got_sig:
        raise WebhookVerificationError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        ts = int(got_ts)
    except ValueError:
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is not an integer") from None
    if abs(now - ts) > tolerance:
        raise WebhookVerificationError(
            f"timestamp is {int(now - ts)} s away from now (tolerance {tolerance:g} s)"
        )
    offered = [s.strip() for s in got_sig.split(",") if s.strip().startswith("v1=")]
    for key in keys:
        expected = sign(key, ts, body)
        if any(hmac.compare_digest(expected, s) for s in offered):
            return ts
    raise WebhookVerificationError("no signature matches")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if name in headers:
        return headers[name]
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)
