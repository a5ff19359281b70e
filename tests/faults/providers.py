"""Loopback providers that misbehave on demand, and count what they accepted per recipient.

* :class:`FaultRelay` -- a real SMTP server (aiosmtpd) whose ``DATA`` handling can be ``ok``,
  ``slow`` (queues the message on the final dot, like an MTA, and answers ``delay`` seconds later:
  a client that gave up meanwhile does not undo it), ``hang`` (never answers; accepts nothing) or ``drop`` (closes the
  connection after the body, before any answer; accepts nothing).
* :class:`SilentListener` -- a TCP port that accepts connections and never says a word (a relay
  hung before its greeting).
* :class:`FakeApis` -- Twilio's Messages API, FCM v1 ``messages:send`` and Google's OAuth token
  endpoint on one loopback HTTP server, driven by the real ``twilio`` and ``firebase-admin``
  SDKs; an optional per-request delay.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FaultRelay:
    """An aiosmtpd handler and its controller; ``mode`` and ``delay`` may change while it runs."""

    def __init__(self, mode: str = "ok", delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay
        self.lock = threading.Lock()
        self.data: list[str] = []  # Message-IDs of every DATA transaction the relay saw
        self.accepted: list[str] = []  # ... and of those it accepted (answered 250)
        self.released = threading.Event()
        self.port = free_port()
        self._ctl: Any = None

    def start(self) -> FaultRelay:
        from aiosmtpd.controller import Controller

        self._ctl = Controller(self, hostname="127.0.0.1", port=self.port)
        self._ctl.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self._ctl is not None:
            self._ctl.stop()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.accepted)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        mid = str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"])
        with self.lock:
            self.data.append(mid)
        mode = self.mode
        if mode == "drop":
            server.transport.close()  # gone after the final dot, before any answer
            return "421 closing"
        if mode == "hang":
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return "451 gave up"
        with self.lock:  # queued on the final dot, as an MTA does: a client that leaves now does not undo it
            self.accepted.append(mid)
        if mode == "slow":
            await asyncio.sleep(self.delay)
        return "250 queued"


class SilentListener:
    """Accepts TCP connections and never answers (an SMTP relay hung before its greeting)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)

    def stop(self) -> None:
        self._stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


class FakeApis:
    """Twilio Messages.json, FCM messages:send and an OAuth token endpoint; counts per recipient."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.sms: Counter[str] = Counter()  # To -> messages created
        self.push: Counter[str] = Counter()  # token -> messages accepted
        self.requests = 0
        apis = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if apis.delay:
                    time.sleep(apis.delay)
                if self.path.endswith("/Messages.json"):
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    with apis.lock:
                        apis.sms[form.get("To", "")] += 1
                        apis.requests += 1
                    self._reply(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued", "to": form.get("To"),
                                      "from": form.get("From"), "body": form.get("Body"),
                                      "account_sid": ACCOUNT_SID, "num_segments": "1",
                                      "direction": "outbound-api", "api_version": "2010-04-01"})
                elif self.path.endswith("/messages:send"):
                    token = json.loads(body or b"{}").get("message", {}).get("token", "")
                    with apis.lock:
                        apis.push[token] += 1
                        apis.requests += 1
                    self._reply(200, {"name": f"projects/demo-faults/messages/{uuid.uuid4().hex}"})
                elif self.path.endswith("/token"):
                    self._reply(200, {"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"})
                else:
                    self._reply(404, {"message": "not found"})

            def _reply(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def total(self) -> int:
        with self.lock:
            return self.requests

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed client: expected here
            super().handle_error(request, client_address)


def service_account(tmp: Path, token_uri: str, project_id: str = "demo-faults") -> Path:
    """A real service-account key file (fresh RSA key) whose token endpoint is a loopback URL."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project_id, "private_key_id": "k1", "private_key": pem,
        "client_email": f"vigil@{project_id}.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": token_uri}), encoding="utf-8")
    return path


def channels_config(apis: FakeApis, smtp_port: int, key_file: Path, *, email_timeout: float = 10.0
                    ) -> dict[str, Any]:
    """The ``channels`` settings section for these providers (real adapters, loopback endpoints)."""
    return {
        "console": {"enabled": False},
        "sms": {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": "t" * 32,
                "from_number": "+15017122661", "base_url": apis.url},
        "push": {"enabled": True, "credentials_file": str(key_file), "project_id": "demo-faults",
                 "endpoint": f"{apis.url}/v1/projects/{{project}}/messages:send"},
        "email": {"enabled": True, "host": "127.0.0.1", "port": smtp_port, "timeout": email_timeout},
    }
