"""The SMS channel: Twilio's Messages API through the real ``twilio`` SDK.

``send`` calls ``Client.messages.create(to, from_|messaging_service_sid, body, status_callback)``.
Twilio answers ``201`` with a message sid and status ``queued``: that is ``sent``; the final
state arrives later on the status callback, which the web app hands to
:func:`result_from_callback`.  Errors come back two ways, both mapped by :func:`classify_error`:

- synchronously, as ``TwilioRestException.code`` (21xxx: bad or opted-out number, 20003 bad
  credentials, 20429 rate limit);
- asynchronously, as ``ErrorCode`` in the status callback (30xxx: unreachable handset, carrier
  filtering ...).

The table is notify-anchors §1.6: an opted-out number (21610, the user replied STOP) is never
retried and the engine falls back to push or email; an invalid or landline number is flagged;
a configuration problem raises an operator alert; rate limits back off.

Test seams: ``http_client=`` (any ``twilio.http.HttpClient``: a recording fake, no socket) and
the ``base_url`` setting (Prism serving Twilio's OpenAPI spec, or a corporate egress proxy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from notifiers import handover, sms_segments
from notifiers.base import (
    BACKOFF,
    BAD_ADDRESS,
    OPS_ALERT,
    OPT_OUT,
    Channel,
    ChannelConfig,
    DeliveryResult,
    Message,
    Status,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


@dataclass(frozen=True)
class ErrorRule:
    status: Status
    action: str | None
    max_retries: int | None
    meaning: str


# notify-anchors §1.6; https://www.twilio.com/docs/api/errors/<code>
ERRORS: Mapping[int, ErrorRule] = {
    21610: ErrorRule("permanent", OPT_OUT, None, "the recipient replied STOP (unsubscribed)"),
    21211: ErrorRule("permanent", BAD_ADDRESS, None, "invalid 'To' phone number"),
    21614: ErrorRule("permanent", BAD_ADDRESS, None, "'To' number is not SMS-capable"),
    21612: ErrorRule("permanent", BAD_ADDRESS, None, "'To' number cannot be reached from this sender"),
    21635: ErrorRule("permanent", BAD_ADDRESS, None, "'To' number is a landline"),
    21608: ErrorRule("permanent", OPS_ALERT, None, "trial account: the number is not verified"),
    20003: ErrorRule("permanent", OPS_ALERT, None, "authentication failed: check account_sid and auth_token"),
    20429: ErrorRule("transient", BACKOFF, None, "too many requests"),
    30001: ErrorRule("transient", BACKOFF, None, "queue overflow"),
    30002: ErrorRule("permanent", OPS_ALERT, None, "account suspended"),
    30003: ErrorRule("transient", None, 1, "unreachable handset (off or no signal)"),
    30004: ErrorRule("permanent", None, None, "message blocked by the recipient or carrier"),
    30005: ErrorRule("permanent", BAD_ADDRESS, None, "unknown destination handset"),
    30006: ErrorRule("permanent", BAD_ADDRESS, None, "landline or unreachable carrier"),
    30007: ErrorRule(
        "permanent", OPS_ALERT, None, "carrier filtering: review content and sender registration"
    ),
    30008: ErrorRule("transient", None, 1, "unknown error"),
}

# Status callbacks can arrive twice or out of order: keep the highest rank per MessageSid.
STATUS_RANK: Mapping[str, int] = {
    "scheduled": 0,
    "accepted": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}
_PENDING = {"scheduled", "accepted", "queued", "sending", "sent", "partially_delivered"}


class SmsConfig(ChannelConfig):
    account_sid: str | None = Field(default=None, description="AC..., the account the messages are billed to")
    auth_token: SecretStr | None = None
    api_key_sid: str | None = Field(
        default=None, description="SK...; with api_key_secret, instead of auth_token"
    )
    api_key_secret: SecretStr | None = None
    from_number: str | None = Field(default=None, description="E.164 number or alphanumeric sender id")
    messaging_service_sid: str | None = Field(default=None, description="MG...; instead of from_number")
    status_callback_url: str | None = Field(default=None, description="public URL of the status webhook")
    validity_period: int | None = Field(
        default=None, ge=1, le=36000, description="seconds Twilio may keep trying"
    )
    max_segments: int = Field(
        default=2, ge=1, le=10, description="refuse a body longer than this many segments"
    )
    timeout: float = Field(default=10.0, gt=0, le=120)
    base_url: str | None = Field(
        default=None, description="API root instead of https://api.twilio.com (Prism, a proxy)"
    )

    @field_validator("account_sid")
    @classmethod
    def _ac(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"AC[0-9a-fA-F]{32}", v):
            raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
        return v

    @field_validator("api_key_sid")
    @classmethod
    def _sk(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"SK[0-9a-fA-F]{32}", v):
            raise ValueError("api_key_sid must be 'SK' followed by 32 hex digits")
        return v

    @field_validator("messaging_service_sid")
    @classmethod
    def _mg(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"MG[0-9a-fA-F]{32}", v):
            raise ValueError("messaging_service_sid must be 'MG' followed by 32 hex digits")
        return v

    @field_validator("from_number")
    @classmethod
    def _from(cls, v: str | None) -> str | None:
        if v is not None and not (E164.match(v) or _ALPHA_SENDER.match(v)):
            raise ValueError(
                "from_number must be an E.164 number (+15017122661) or a sender id of 1-11 letters/digits"
            )
        return v

    @field_validator("status_callback_url", "base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _complete(self) -> SmsConfig:
        if not self.enabled:
            return self
        missing = []
        if not self.account_sid:
            missing.append("account_sid")
        if not self.auth_token and not (self.api_key_sid and self.api_key_secret):
            missing.append("auth_token (or api_key_sid and api_key_secret)")
        if bool(self.from_number) == bool(self.messaging_service_sid):
            missing.append("exactly one of from_number and messaging_service_sid")
        if missing:
            raise ValueError("the sms channel is enabled but needs " + "; ".join(missing))
        return self


class SmsChannel(Channel):
    name: ClassVar[str] = "sms"
    config_model: ClassVar[type[ChannelConfig]] = SmsConfig
    needs: ClassVar[str | None] = "phone"
    max_body_len: ClassVar[int | None] = 1600  # Twilio's limit for one message body

    def __init__(self, config: SmsConfig, *, http_client: Any = None) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.config = config
        if config.api_key_sid and config.api_key_secret:
            user, secret = config.api_key_sid, config.api_key_secret.get_secret_value()
        else:
            user, secret = (
                config.account_sid or "",
                config.auth_token.get_secret_value() if config.auth_token else "",
            )
        self._adapter_reports = http_client is None  # our own client: the handover comes from its adapter
        if http_client is None:
            http_client = TwilioHttpClient(timeout=config.timeout, max_retries=0)
            handover.mount(http_client.session, max_retries=0)
        self.client = Client(user, secret, config.account_sid, http_client=http_client)
        if config.base_url:
            # Domain.absolute_url() reads base_url on every request (twilio 9.x, pinned <10).
            self.client.api.base_url = config.base_url.rstrip("/")

    reports_handover: ClassVar[bool] = True  # from the transport adapter, right before the POST

    def transmit(self, message: Message, hook: Callable[[], None]) -> DeliveryResult:
        if not self._adapter_reports:  # a client of the caller's (a test seam): just before the call
            return super().transmit(message, hook)
        h = handover.Handover(hook)
        with handover.handing_over(h):
            result = self.send(message)
        h.raise_refusal()
        return result

    def send(self, message: Message) -> DeliveryResult:
        to = message.recipient.phone
        if not to:
            return DeliveryResult("skipped", error="recipient has no phone number")
        if not E164.match(to):
            return DeliveryResult("permanent", error=f"not an E.164 phone number: {to!r}", action=BAD_ADDRESS)
        info = sms_segments.analyse(message.text)
        if info.segments > self.config.max_segments:
            return DeliveryResult(
                "permanent",
                error=f"body is {info.segments} {info.encoding} segments "
                f"({info.units} units), over the budget of {self.config.max_segments}",
            )
        try:
            created = self.client.messages.create(
                to=to,
                from_=self.config.from_number,
                messaging_service_sid=self.config.messaging_service_sid,
                body=message.text,
                status_callback=self.config.status_callback_url,
                validity_period=self.config.validity_period,
            )
        except Exception as e:
            return classify_exception(e)
        status = str(created.status or "queued")
        if status in ("failed", "undelivered", "canceled"):
            return classify_error(created.error_code, None, provider_id=created.sid, twilio_status=status)
        return DeliveryResult("sent", provider_id=created.sid)

    def close(self) -> None:
        session = getattr(self.client.http_client, "session", None)
        if session is not None:
            session.close()

    def describe(self) -> dict[str, object]:
        c = self.config
        return {
            "name": self.name,
            "account_sid": c.account_sid,
            "from": c.from_number or c.messaging_service_sid,
            "status_callback": c.status_callback_url,
            "max_segments": c.max_segments,
        }


def classify_exception(e: BaseException) -> DeliveryResult:
    """An exception from ``messages.create`` as a result: Twilio's code first, then HTTP, then I/O."""
    from requests import RequestException
    from twilio.base.exceptions import TwilioRestException, TwilioServiceException

    if isinstance(e, TwilioRestException | TwilioServiceException):
        detail = getattr(e, "msg", None) or getattr(e, "detail", None) or getattr(e, "title", None) or str(e)
        return classify_error(e.code, e.status, detail=str(detail))
    from requests.exceptions import ReadTimeout

    if isinstance(e, ReadTimeout):  # the request went out; Twilio may have created the message
        return DeliveryResult("unknown", error=f"no answer from the Twilio API: {type(e).__name__}: {e}")
    if isinstance(e, RequestException | OSError):
        return DeliveryResult("transient", error=f"Twilio API unreachable: {type(e).__name__}: {e}")
    return DeliveryResult("transient", error=f"unexpected {type(e).__name__}: {e}")


def classify_error(
    code: Any,
    http_status: int | None,
    *,
    detail: str = "",
    provider_id: str | None = None,
    twilio_status: str | None = None,
) -> DeliveryResult:
    """A Twilio error code (or, failing that, the HTTP status) as a delivery result."""
    try:
        num = int(code) if code is not None and str(code).strip() else None
    except ValueError:
        num = None
    rule = ERRORS.get(num) if num is not None else None
    text = "; ".join(x for x in (rule.meaning if rule else None, detail, twilio_status) if x) or "failed"
    err = str(num) if num is not None else (str(http_status) if http_status else None)
    if rule is not None:
        return DeliveryResult(rule.status, provider_id, err, text, rule.action, None, rule.max_retries)
    if http_status == 429:
        return DeliveryResult("transient", provider_id, err, text, BACKOFF)
    if http_status in (401, 403):
        return DeliveryResult("permanent", provider_id, err, text, OPS_ALERT)
    if http_status is not None and (http_status >= 500 or http_status in (408, 425)):
        return DeliveryResult("transient", provider_id, err, text)
    return DeliveryResult("permanent", provider_id, err, text)


def result_from_callback(params: Mapping[str, str]) -> DeliveryResult:
    """A Twilio status callback (form fields, signature already checked) as a delivery result.

    ``queued/sending/sent`` -> ``sent``; ``delivered/read`` -> ``delivered``;
    ``undelivered/failed`` -> :func:`classify_error` on ``ErrorCode``.  Unknown fields are
    ignored: Twilio adds parameters without notice.
    """
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if status in ("delivered", "read"):
        return DeliveryResult("delivered", provider_id=sid)
    if status in ("undelivered", "failed"):
        code = params.get("ErrorCode")
        result = classify_error(
            code, None, detail=params.get("ErrorMessage", ""), provider_id=sid, twilio_status=status
        )
        return result if code else DeliveryResult("permanent", sid, None, f"Twilio reports {status}")
    if status == "canceled":
        return DeliveryResult("permanent", provider_id=sid, error="message canceled before sending")
    return DeliveryResult("sent", provider_id=sid, error=None if status in _PENDING else f"status {status!r}")


def status_rank(status: str) -> int:
    return STATUS_RANK.get(status.lower(), -1)
