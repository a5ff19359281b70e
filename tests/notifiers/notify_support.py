"""Helpers for the channel tests: loopback HTTP servers, a recording Twilio client, credentials.

Everything here replaces only the *remote end*: the SDKs under test (twilio, firebase-admin,
httpx, smtplib) run their real code against these.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from notifiers.base import Message, Recipient

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-test-auth-token-0123456789"
FROM = "+15017122661"
TO = "+15558675310"
UTC = dt.UTC
ALERT_TS = dt.datetime(2026, 4, 14, 14, 5, tzinfo=UTC)


# -- HTTP -----------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON, bytes/str as is
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopbackHTTP:
    """A ThreadingHTTPServer on 127.0.0.1 that records requests and answers with scripted replies.

    ``route(prefix, reply_or_callable)`` answers paths starting with ``prefix``; a callable gets
    the :class:`Recorded` request.  ``queue(prefix, *replies)`` answers the next requests in turn.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[str, Reply | Callable[[Recorded], Reply]] = {}
        self._queues: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                rec = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(n),
                )
                reply = outer._answer(rec)
                body = reply.body
                raw = (
                    body
                    if isinstance(body, bytes)
                    else (
                        body.encode()
                        if isinstance(body, str)
                        else json.dumps(body if body is not None else {}).encode()
                    )
                )
                self.send_response(reply.status)
                ctype = "application/json" if not isinstance(body, bytes | str) else "text/plain"
                self.send_header("Content-Type", reply.headers.get("Content-Type", ctype))
                for k, v in reply.headers.items():
                    if k != "Content-Type":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_POST = do_GET = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def route(self, prefix: str, reply: Reply | Callable[[Recorded], Reply]) -> None:
        self._routes[prefix] = reply

    def queue(self, prefix: str, *replies: Reply) -> None:
        self._queues.setdefault(prefix, []).extend(replies)

    def _answer(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            for prefix, q in self._queues.items():
                if rec.path.startswith(prefix) and q:
                    return q.pop(0)
            for prefix, r in sorted(self._routes.items(), key=lambda kv: -len(kv[0])):
                if rec.path.startswith(prefix):
                    return r(rec) if callable(r) else r
        return Reply(404, {"error": f"no route for {rec.path}"})

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def start(self) -> LoopbackHTTP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def loopback() -> Iterator[LoopbackHTTP]:
    srv = LoopbackHTTP().start()
    try:
        yield srv
    finally:
        srv.stop()


# -- Twilio ---------------------------------------------------------------------------------------
def twilio_message_json(sid: str = "SM" + "a" * 32, status: str = "queued", body: str = "") -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "status": status,
        "body": body,
        "to": TO,
        "from": FROM,
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": "Tue, 14 Apr 2026 14:05:00 +0000",
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


def twilio_error_json(code: int, status: int, message: str = "error") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def recording_twilio_client(script: list[tuple[int, Any]]) -> Any:
    """A ``twilio.http.HttpClient`` (no socket) that records each call and replays ``script``."""
    import logging

    from twilio.http import HttpClient
    from twilio.http.response import Response

    class RecordingHttpClient(HttpClient):
        def __init__(self) -> None:
            super().__init__(logging.getLogger("test.twilio"), is_async=False)
            self.calls: list[dict[str, Any]] = []
            self.script = list(script)

        def request(
            self,
            method: str,
            uri: str,
            params: Any = None,
            data: Any = None,
            headers: Any = None,
            auth: Any = None,
            timeout: Any = None,
            allow_redirects: bool = False,
        ) -> Response:
            self.calls.append(
                {
                    "method": method,
                    "url": uri,
                    "params": params,
                    "data": dict(data or {}),
                    "headers": dict(headers or {}),
                    "auth": auth,
                    "timeout": timeout,
                }
            )
            status, body = self.script.pop(0) if self.script else (500, {"message": "script exhausted"})
            return Response(status, body if isinstance(body, str) else json.dumps(body))

    return RecordingHttpClient()


# -- Firebase -------------------------------------------------------------------------------------
def fake_firebase_credential(project_id: str = "demo-alerts") -> Any:
    """firebase-admin's own test pattern (tests/testutils.py: MockCredential): no network at all."""
    import google.auth.credentials
    from firebase_admin import credentials

    class FakeGoogleCredential(google.auth.credentials.Credentials):
        def refresh(self, request: Any) -> None:
            self.token = "test-access-token"
            self.expiry = None

    class FakeCredential(credentials.Base):
        def __init__(self) -> None:
            self._g = FakeGoogleCredential()
            self.project_id = project_id

        def get_credential(self) -> Any:
            return self._g

    return FakeCredential()


def fcm_error(status: int, fcm_code: str | None, grpc_status: str, message: str = "error") -> dict[str, Any]:
    """An FCM v1 error body; ``fcm_code`` goes in details[] as FcmError.errorCode."""
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
        if fcm_code
        else []
    )
    return {"error": {"code": status, "message": message, "status": grpc_status, "details": details}}


def service_account_file(tmp: Path, token_uri: str, project_id: str = "demo-alerts") -> tuple[Path, Any]:
    """A real service-account key (fresh RSA key) whose token_uri is a loopback URL."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": f"vigil@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = tmp / "service-account.json"
    path.write_text(json.dumps(info))
    return path, key.public_key()


# -- TLS ------------------------------------------------------------------------------------------
def self_signed_cert(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# -- messages -------------------------------------------------------------------------------------
def recipient(**kw: Any) -> Recipient:
    base = {
        "account_id": "acct-1",
        "locale": "en",
        "timezone": "Asia/Shanghai",
        "phone": TO,
        "email": "ana@example.com",
        "push_token": "fcm-token-1",
        "anti_phishing_code": "BLUE42",
    }
    base.update(kw)
    return Recipient(**base)


def message(
    channel: str,
    *,
    text: str = "Vigil: new sign-in. Not you? Reply N 4821",
    subject: str = "Alert",
    html: str | None = None,
    data: Mapping[str, str] | None = None,
    outbox_id: str = "ob-1",
    **recipient_kw: Any,
) -> Message:
    return Message(
        outbox_id, channel, recipient(**recipient_kw), subject, text, html, dict(data or {}), "al-1"
    )


def context(
    detector: str = "new_location",
    evidence: Mapping[str, Any] | None = None,
    *,
    locale: str = "en",
    timezone: str = "Asia/Shanghai",
    anti_phishing_code: str | None = "BLUE42",
    link: str | None = "https://alerts.exchange.example/c/tok123",
    sms_code: str | None = "4821",
    kind: str = "country",
) -> dict[str, Any]:
    ev = dict(
        evidence
        if evidence is not None
        else {"country": "FR", "city": "Paris", "ip": "203.0.113.9", "device_id": "iPhone 15 Pro"}
    )
    return {
        "alert": {
            "id": "al-1",
            "rule_id": "r-1",
            "detector": detector,
            "kind": kind,
            "severity": "high",
            "ts": ALERT_TS,
            "evidence": ev,
        },
        "account": {
            "account_id": "acct-1",
            "locale": locale,
            "timezone": timezone,
            "anti_phishing_code": anti_phishing_code,
        },
        "link": link,
        "sms_code": sms_code,
        "expires_at": ALERT_TS + dt.timedelta(minutes=30),
        "brand": "Vigil",
    }
