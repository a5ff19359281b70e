"""The push channel: Firebase Cloud Messaging through the real ``firebase-admin`` SDK.

What goes out is a *data* message for Android -- FCM has no server-side action buttons, so the
app builds "It was me" / "Not me" itself from ``actions``, ``confirm_title`` and ``deny_title``
-- plus an alert for iOS whose ``aps.category`` selects the app's registered
``UNNotificationCategory`` with the same two actions, and a web-push notification with both
actions.  ``title_loc_key`` / ``body_loc_key`` / ``loc_args`` ride along so an app may localise
on the device instead of showing the server's rendering.

FCM errors map onto :class:`DeliveryResult` (notify-anchors §2.2): an unregistered token or a
sender-id mismatch is permanent with ``prune_token``; ``QUOTA_EXCEEDED`` is transient with a
back-off; a rejected APNs/web-push key (``THIRD_PARTY_AUTH_ERROR``) or our own credentials
being refused is an operator alert.  FCM gives no delivery receipt, so an accepted message is
``sent`` until the app answers.

Credentials: a service-account JSON file in production (``credentials_file``; its
``token_uri`` is where the OAuth token comes from).  Tests inject ``credential=`` (a
``firebase_admin.credentials.Base``) and point ``endpoint`` at a loopback server.  FCM has no
emulator and no endpoint setting, so ``endpoint`` sets the messaging service's private
``_fcm_url`` for this app only, and the SDK's own retries are switched off on its private
session (see :func:`_no_sdk_retries`); firebase-admin is pinned (<7.8) and a guard test fails
if those attributes move.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from notifiers.base import (
    BACKOFF,
    OPS_ALERT,
    PRUNE_TOKEN,
    Channel,
    ChannelConfig,
    DeliveryResult,
    Message,
)
from notifiers.handover import Handover, handing_over

FCM_DATA_LIMIT = 4096  # bytes of the data payload FCM accepts for a token


class PushConfig(ChannelConfig):
    credentials_file: str | None = Field(default=None, description="service-account JSON (production)")
    project_id: str | None = Field(default=None, description="default: the project_id in credentials_file")
    endpoint: str | None = Field(default=None, description="FCM send URL override; '{project}' is replaced")
    android_channel_id: str = "vigil_security"
    apns_category: str = "VIGIL_SECURITY_ALERT"
    apns_loc_keys: bool = Field(
        default=False, description="let iOS localise from loc keys (the app must ship them)"
    )
    ttl_seconds: int = Field(default=900, ge=0, le=2_419_200)
    target: Literal["token", "fid"] = Field(
        default="token",
        description="what push_token holds: an FCM registration token or a Firebase installation id",
    )
    dry_run: bool = Field(default=False, description="FCM validates but does not deliver (validate_only)")
    timeout: float = Field(default=10.0, gt=0, le=120)
    quota_backoff_seconds: float = Field(
        default=60.0, gt=0, description="wait after QUOTA_EXCEEDED without Retry-After"
    )

    @field_validator("credentials_file")
    @classmethod
    def _credentials(cls, v: str | None) -> str | None:
        if v is None:
            return v
        p = Path(v)
        if not p.is_file():
            raise ValueError(f"credentials file {v!r} does not exist")
        try:
            info = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"credentials file {v!r} is not JSON: {e}") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValueError(
                f"credentials file {v!r} is not a service-account key (type must be 'service_account')"
            )
        missing = [k for k in ("project_id", "private_key", "client_email") if not info.get(k)]
        if missing:
            raise ValueError(f"credentials file {v!r} lacks {', '.join(missing)}")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v


class PushChannel(Channel):
    name: ClassVar[str] = "push"
    config_model: ClassVar[type[ChannelConfig]] = PushConfig
    needs: ClassVar[str | None] = "push_token"
    max_body_len: ClassVar[int | None] = 1024

    def __init__(self, config: PushConfig, *, credential: Any = None) -> None:
        import firebase_admin
        from firebase_admin import credentials, messaging

        self.config = config
        if credential is None:
            if not config.credentials_file:
                raise ValueError("the push channel needs credentials_file (a service-account JSON key)")
            credential = credentials.Certificate(config.credentials_file)
        project = config.project_id or getattr(credential, "project_id", None)
        if not project:
            raise ValueError("the push channel needs project_id (or a credentials_file that names one)")
        self.project_id: str = project
        self.app = firebase_admin.initialize_app(
            credential,
            {"projectId": project, "httpTimeout": config.timeout},
            name=f"vigil-push-{uuid.uuid4().hex}",
        )
        service = messaging._get_messaging_service(self.app)
        if config.endpoint:
            service._fcm_url = config.endpoint.replace("{project}", project)
        _no_sdk_retries(service)

    def build(self, message: Message) -> Any:
        """The ``firebase_admin.messaging.Message`` for ``message`` (public for tests and previews)."""
        from firebase_admin import messaging

        cfg = self.config
        data = {str(k): str(v) for k, v in message.data.items() if v is not None}
        data.setdefault("title", message.subject)
        data.setdefault("body", message.text)
        data["outbox_id"] = message.outbox_id
        data.setdefault("android_channel_id", cfg.android_channel_id)
        if message.alert_id:
            data["alert_id"] = message.alert_id
        collapse = (message.alert_id or message.outbox_id)[:64]
        actions = [a for a in data.get("actions", "").split(",") if a]
        alert = messaging.ApsAlert(title=message.subject, body=message.text)
        if cfg.apns_loc_keys and data.get("body_loc_key"):
            alert = messaging.ApsAlert(
                title=message.subject,
                body=message.text,
                title_loc_key=data.get("title_loc_key"),
                loc_key=data["body_loc_key"],
                loc_args=json.loads(data.get("loc_args") or "[]"),
            )
        web_actions = [messaging.WebpushNotificationAction(a, data.get(f"{a}_title") or a) for a in actions]
        link = data.get("confirm_url", "")
        target: dict[str, str] = {cfg.target: message.recipient.push_token or ""}
        with warnings.catch_warnings():
            # 7.7 deprecates Message.token for fid; apps still register tokens (see `target`)
            warnings.simplefilter("ignore", DeprecationWarning)
            return messaging.Message(
                data=data,
                android=messaging.AndroidConfig(
                    priority="high",
                    ttl=cfg.ttl_seconds,
                    collapse_key=collapse,
                ),
                apns=messaging.APNSConfig(
                    headers={"apns-priority": "10", "apns-push-type": "alert", "apns-collapse-id": collapse},
                    payload=messaging.APNSPayload(
                        aps=messaging.Aps(
                            alert=alert,
                            category=cfg.apns_category,
                            sound="default",
                            thread_id="vigil-security",
                        ),
                        alert_id=data.get("alert_id", ""),
                        actions=data.get("actions", ""),
                    ),
                ),
                webpush=messaging.WebpushConfig(
                    headers={"Urgency": "high", "TTL": str(cfg.ttl_seconds)},
                    notification=messaging.WebpushNotification(
                        title=message.subject,
                        body=message.text,
                        actions=web_actions or None,
                        tag=collapse,
                        require_interaction=bool(actions),
                    ),
                    fcm_options=messaging.WebpushFCMOptions(link=link)
                    if link.startswith("https://")
                    else None,
                ),
                **target,
            )

    reports_handover: ClassVar[bool] = True  # from the transport adapter, right before the POST

    def transmit(self, message: Message, handover: Callable[[], None]) -> DeliveryResult:
        h = Handover(handover)
        with handing_over(h):
            result = self.send(message)
        h.raise_refusal()
        if h.done and result.status == "transient" and "DeadlineExceeded" in (result.error or ""):
            # the request was written and FCM did not answer in time: it may have the message
            return DeliveryResult("unknown", error=result.error, error_code=result.error_code)
        return result

    def send(self, message: Message) -> DeliveryResult:
        from firebase_admin import messaging

        if not message.recipient.push_token:
            return DeliveryResult("skipped", error="recipient has no push token")
        try:
            msg = self.build(message)
            size = len(json.dumps(msg.data, ensure_ascii=False).encode("utf-8"))
            if size > FCM_DATA_LIMIT:
                return DeliveryResult(
                    "permanent", error=f"data payload is {size} bytes, over FCM's {FCM_DATA_LIMIT}"
                )
            name = messaging.send(msg, dry_run=self.config.dry_run, app=self.app)
        except Exception as e:
            return classify(e, self.config.quota_backoff_seconds)
        return DeliveryResult("sent", provider_id=name)

    def close(self) -> None:
        import firebase_admin

        try:
            firebase_admin.delete_app(self.app)
        except ValueError:  # already deleted
            pass

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "project_id": self.project_id,
            "endpoint": self.config.endpoint or "FCM",
            "dry_run": self.config.dry_run,
        }


def classify(e: BaseException, quota_backoff: float = 60.0) -> DeliveryResult:
    """An exception from ``messaging.send`` (or the OAuth token refresh) as a delivery result."""
    from firebase_admin import exceptions as fx
    from firebase_admin import messaging
    from google.auth import exceptions as gx

    code = getattr(e, "code", None)
    text = f"{type(e).__name__}: {e}"
    err = str(code) if code else None
    if isinstance(e, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return DeliveryResult("permanent", error_code=err, error=text, action=PRUNE_TOKEN)
    if isinstance(e, messaging.QuotaExceededError | fx.ResourceExhaustedError):
        return DeliveryResult(
            "transient",
            error_code=err,
            error=text,
            action=BACKOFF,
            retry_after=_retry_after(e) or quota_backoff,
        )
    if isinstance(e, messaging.ThirdPartyAuthError):
        return DeliveryResult(
            "permanent",
            error_code=err,
            error=f"APNs or web-push credentials rejected: {text}",
            action=OPS_ALERT,
        )
    if isinstance(e, fx.UnauthenticatedError | fx.PermissionDeniedError):
        return DeliveryResult(
            "permanent", error_code=err, error=f"FCM refused our credentials: {text}", action=OPS_ALERT
        )
    if isinstance(e, fx.NotFoundError):
        return DeliveryResult("permanent", error_code=err, error=text, action=PRUNE_TOKEN)
    if isinstance(e, fx.InvalidArgumentError):
        return DeliveryResult("permanent", error_code=err, error=text)
    if isinstance(e, fx.FirebaseError):
        status = getattr(getattr(e, "http_response", None), "status_code", None)
        transient = (
            status is None
            or status >= 500
            or isinstance(
                e, fx.UnavailableError | fx.InternalError | fx.DeadlineExceededError | fx.UnknownError
            )
        )
        return DeliveryResult("transient" if transient else "permanent", error_code=err, error=text)
    if isinstance(e, gx.RefreshError) and not getattr(e, "retryable", False):
        return DeliveryResult("permanent", error=f"OAuth token refused: {text}", action=OPS_ALERT)
    if isinstance(e, ValueError | TypeError):
        return DeliveryResult("permanent", error=f"invalid push message: {text}")
    return DeliveryResult("transient", error=text)


def _no_sdk_retries(service: Any) -> None:
    """Let the delivery policy own retries.  firebase-admin's session retries 500/503 four times
    and, through urllib3, *sleeps* through a 429's ``Retry-After`` inside ``send`` -- a worker
    blocked for as long as FCM asks.  A result with ``retry_after`` is what the policy needs."""
    from notifiers.handover import HandoverAdapter

    session = service._client.session
    for prefix in ("https://", "http://", "https://fcm.googleapis.com"):
        session.mount(prefix, HandoverAdapter(max_retries=0))  # and the delivery job hears of the handover


def _retry_after(e: BaseException) -> float | None:
    resp = getattr(e, "http_response", None)
    value = getattr(resp, "headers", {}).get("Retry-After") if resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
