"""The email channel: transactional security mail over SMTP (stdlib ``smtplib``).

A message is ``multipart/alternative`` (text, then HTML), with a deterministic ``Message-ID``
built from the outbox id (a retry after a lost reply carries the same id, so the receiving side
can drop the duplicate), ``Date``, ``Auto-Submitted: auto-generated`` (RFC 3834: no vacation
replies) and ``Content-Language``.  No ``List-Unsubscribe``: security alerts are transactional
mail, not a subscription.  DKIM, SPF and DMARC belong to the relay, not here; ``sender`` must
simply be an address of a domain the relay signs.

SMTP replies map onto :class:`DeliveryResult`: 4xx is transient (greylisting, full queue),
5xx permanent -- a refused recipient marks the address bad, a refused sender or failed login is
an operator problem (``ops_alert``).  A refused connection or a timeout is transient.  An
accepted message is ``delivered``: SMTP gives no later receipt.

One transmission per attempt.  Once the relay has answered ``354`` to ``DATA``, the body and its
final dot may make the relay queue the message even if its ``250`` never reaches us: a timeout or
a dropped connection from then on is an ``unknown`` outcome, recorded as such and *never* resent
through a fresh connection within the same attempt (the delivery policy decides about a later
one, which carries the same ``Message-ID``).  Only a kept-alive session found dead before
``DATA`` -- when the relay cannot have the message -- is retried once on a new connection.
``transmit`` calls the delivery job's ``handover`` hook right after the ``354``.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from notifiers.base import (
    BAD_ADDRESS,
    OPS_ALERT,
    Channel,
    ChannelConfig,
    DeliveryResult,
    Message,
)
from notifiers.handover import Handover

_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_BARE_EOL = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_BAD_RECIPIENT_CODES = {501, 510, 511, 550, 551, 553}


class EmailConfig(ChannelConfig):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    use_ssl: bool = False
    ca_file: str | None = Field(default=None, description="PEM bundle to verify the server with (private CA)")
    verify_tls: bool = Field(default=True, description="off only for a local test relay")
    timeout: float = Field(default=10.0, gt=0, le=300)
    sender: str = "Vigil Security <security@exchange.example>"
    reply_to: str | None = None
    local_hostname: str | None = None
    reuse_connection: bool = Field(default=True, description="keep one SMTP session open between messages")

    @field_validator("sender", "reply_to")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and "@" not in parseaddr(v)[1]:
            raise ValueError(
                f"{v!r} is not an email address (expected 'Name <user@domain>' or 'user@domain')"
            )
        return v

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"CA file {v!r} does not exist")
        return v

    @model_validator(mode="after")
    def _tls(self) -> EmailConfig:
        if self.starttls and self.use_ssl:
            raise ValueError(
                "choose one of starttls (upgrade a plain connection) and use_ssl (TLS from the start)"
            )
        if self.password is not None and not self.username:
            raise ValueError("password is set but username is not")
        return self

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]


class EmailChannel(Channel):
    name: ClassVar[str] = "email"
    config_model: ClassVar[type[ChannelConfig]] = EmailConfig
    needs: ClassVar[str | None] = "email"
    max_body_len: ClassVar[int | None] = None

    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def build(self, message: Message) -> EmailMessage:
        """The MIME message (public so tests and previews see exactly what is sent)."""
        cfg = self.config
        domain = cfg.sender_address.rpartition("@")[2] or "localhost"
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = cfg.sender
        msg["To"] = message.recipient.email or ""
        if cfg.reply_to:
            msg["Reply-To"] = cfg.reply_to
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = f"<vigil.{_ID_SAFE.sub('-', message.outbox_id)}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["X-Vigil-Outbox-Id"] = _ID_SAFE.sub("-", message.outbox_id)
        msg.set_content(message.text)
        if message.html:
            msg.add_alternative(message.html, subtype="html")
            html = msg.get_body(("html",))
            for cid, (data, kind) in message.inline.items():  # the brand's logo: part of the mail, not a URL
                if html is not None and f"cid:{cid}" in message.html:
                    maintype, _, subtype = kind.partition("/")
                    html.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>",
                                     disposition="inline")
        msg["Content-Language"] = message.recipient.locale  # after set_content, which drops Content-*
        return msg

    reports_handover: ClassVar[bool] = True

    def send(self, message: Message) -> DeliveryResult:
        return self.transmit(message, _nothing)

    def transmit(self, message: Message, handover: Callable[[], None]) -> DeliveryResult:
        rcpt = message.recipient.email
        if not rcpt:
            return DeliveryResult("skipped", error="recipient has no email address")
        if "@" not in parseaddr(rcpt)[1]:
            return DeliveryResult("permanent", error=f"not an email address: {rcpt!r}", action=BAD_ADDRESS)
        try:
            msg = self.build(message)
        except (ValueError, TypeError) as e:  # a header the policy refuses
            return DeliveryResult("permanent", error=f"cannot build the message: {e}")
        with self._lock:
            handed = _Handover(handover)
            try:
                return self._send_locked(msg, rcpt, handed)
            except Exception as e:
                self._drop()
                handed.raise_refusal()  # the job withdrew the message: nothing of the body went out
                if handed.dot_sent and not isinstance(e, smtplib.SMTPResponseException):
                    # the relay has the whole body and its final dot: it may have queued the message
                    return DeliveryResult("unknown", provider_id=str(msg["Message-ID"]),
                                          error=f"no answer after DATA: {type(e).__name__}: {e}")
                return classify(e)

    def _send_locked(self, msg: EmailMessage, rcpt: str, handed: _Handover) -> DeliveryResult:
        for attempt in (1, 2):
            conn = self._connection()
            conn.handover = handed  # type: ignore[attr-defined]
            try:
                conn.send_message(msg, from_addr=self.config.sender_address, to_addrs=[rcpt])
                break
            except smtplib.SMTPServerDisconnected:
                # a kept-alive session the server closed before DATA: one fresh connection, then report;
                # after DATA the relay may hold the message, so that is never resent here
                self._drop()
                if attempt == 2 or handed.done or not self.config.reuse_connection:
                    raise
            finally:
                conn.handover = None  # type: ignore[attr-defined]
        if not self.config.reuse_connection:
            self._drop(quit_=True)
        return DeliveryResult("delivered", provider_id=str(msg["Message-ID"]))

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        cfg = self.config
        ctx = self._tls_context() if (cfg.starttls or cfg.use_ssl) else None
        conn: smtplib.SMTP
        if cfg.use_ssl:
            conn = _SMTPSSL(
                cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout, context=ctx
            )
        else:
            conn = _SMTP(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout)
        try:
            conn.ehlo()
            if cfg.starttls:
                conn.starttls(context=ctx)
                conn.ehlo()
            if cfg.username:
                conn.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _drop(self, quit_: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit() if quit_ else conn.close()
        except (OSError, smtplib.SMTPException):
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop(quit_=True)

    def describe(self) -> dict[str, object]:
        c = self.config
        return {
            "name": self.name,
            "host": c.host,
            "port": c.port,
            "tls": "ssl" if c.use_ssl else "starttls" if c.starttls else "none",
            "sender": c.sender,
        }


def classify(e: BaseException) -> DeliveryResult:
    """An exception from smtplib or the socket as a delivery result (4xx transient, 5xx permanent)."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(e.recipients.values()), (0, b""))
        return _by_code(code, text, bad_address=code in _BAD_RECIPIENT_CODES)
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return DeliveryResult(
            "permanent",
            error_code=str(e.smtp_code),
            error=f"SMTP login refused: {_text(e.smtp_error)}",
            action=OPS_ALERT,
        )
    if isinstance(e, smtplib.SMTPSenderRefused):
        r = _by_code(e.smtp_code, e.smtp_error)
        return (
            r
            if r.status == "transient"
            else DeliveryResult(
                "permanent", error_code=r.error_code, error=f"sender refused: {r.error}", action=OPS_ALERT
            )
        )
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return DeliveryResult(
            "permanent", error=f"SMTP server lacks a required extension: {e}", action=OPS_ALERT
        )
    if isinstance(e, smtplib.SMTPResponseException):
        return _by_code(e.smtp_code, e.smtp_error)
    if isinstance(e, ssl.SSLCertVerificationError):
        return DeliveryResult(
            "permanent", error=f"TLS certificate not trusted: {e.verify_message}", action=OPS_ALERT
        )
    if isinstance(e, smtplib.SMTPException | OSError):
        return DeliveryResult("transient", error=f"SMTP connection: {type(e).__name__}: {e}")
    return DeliveryResult("transient", error=f"unexpected {type(e).__name__}: {e}")


def _by_code(code: int, text: bytes | str, bad_address: bool = False) -> DeliveryResult:
    msg = f"{code} {_text(text)}"
    if 500 <= code < 600:
        return DeliveryResult(
            "permanent", error_code=str(code), error=msg, action=BAD_ADDRESS if bad_address else None
        )
    return DeliveryResult("transient", error_code=str(code), error=msg)  # 4xx, or no code at all


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _nothing() -> None:
    pass


class _Handover(Handover):
    """The job's hook, called when the relay has said ``354``; then whether the body and its final
    dot were written (a failure while writing them leaves the relay an incomplete message, which
    it discards)."""

    dot_sent = False


def _data(conn: Any, msg: bytes | str) -> tuple[int, bytes]:
    """``smtplib.SMTP.data`` with the handover hook between the ``354`` and the body.

    The same wire protocol as the standard library (dot-stuffing, CRLF line ends for a str body,
    bytes sent as they are, the final dot); only the hook is new.  A non-354 answer leaves the
    hook uncalled: the relay refused ``DATA``.
    """
    conn.putcmd("data")
    code, repl = conn.getreply()
    if conn.debuglevel > 0:
        conn._print_debug("data:", (code, repl))
    if code != 354:
        raise smtplib.SMTPDataError(code, repl)
    hook = getattr(conn, "handover", None)
    if hook is not None:
        hook()
    data = _BARE_EOL.sub(b"\r\n", msg.encode("ascii")) if isinstance(msg, str) else msg
    q = _LEADING_DOT.sub(b"..", data)
    if q[-2:] != b"\r\n":
        q += b"\r\n"
    conn.send(q + b".\r\n")
    if hook is not None:
        hook.dot_sent = True
    code, reply = conn.getreply()
    return code, reply


class _SMTP(smtplib.SMTP):
    handover: _Handover | None = None

    def data(self, msg: Any) -> tuple[int, bytes]:
        return _data(self, msg)


class _SMTPSSL(smtplib.SMTP_SSL):
    handover: _Handover | None = None

    def data(self, msg: Any) -> tuple[int, bytes]:
        return _data(self, msg)
