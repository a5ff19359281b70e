"""Request limits before parsing: size, content type, and credentials, as a pure ASGI middleware.

Every request with a body is held to ``web.max_body_bytes`` (default 64 KiB): a ``Content-Length``
over it is refused with 413 before a byte is read, and a chunked body is counted as it arrives
and refused the moment it passes the limit -- the application then receives the body already
read, so no form or JSON parser ever sees more.  Each route accepts only its own content types
(forms for the confirmation page and Twilio, JSON for the APIs); anything else, a multipart upload
included, is 415.  Where the protocol allows, the caller is checked before the body is read: the
bearer token of the staff API, the suppressions feed and the metrics endpoints (the token's name
is handed to the route as ``request.state.principal``), and the presence of Twilio's signature
header (the signature itself covers the form fields, so it is verified once they are parsed).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from vigil.web.credentials import Credentials

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORM = ("application/x-www-form-urlencoded",)
JSON = ("application/json",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Route:
    prefix: str
    types: tuple[str, ...] = FORM + JSON
    auth: Credentials | None = None  # checked for every method, before the body
    header: str | None = None  # a header that must be present before the body is read


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body: int, routes: list[Route]) -> None:
        self.app = app
        self.max_body = max_body
        self.routes = sorted(routes, key=lambda r: -len(r.prefix))

    def route(self, path: str) -> Route | None:
        return next((r for r in self.routes
                     if path == r.prefix or path.startswith(r.prefix if r.prefix.endswith("/") else r.prefix + "/")),
                    None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        route = self.route(scope.get("path", ""))
        if route is not None and route.auth is not None:
            status, detail = route.auth.refusal(headers.get("authorization"))
            if status:
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
                await _reply(send, status, detail, extra)
                return
            scope.setdefault("state", {})["principal"] = detail
        if scope.get("method", "GET") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if route is not None and route.header and not headers.get(route.header):
            await _reply(send, 403, f"missing {route.header}")
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, f"request body over {self.max_body} bytes" if length.isdigit()
                         else "invalid Content-Length")
            return
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        allowed = route.types if route is not None else FORM + JSON
        if media not in allowed and not (media == "" and length == "0"):
            await _reply(send, 415, f"unsupported content type {media or '(none)'}; use {' or '.join(allowed)}")
            return
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if len(body) > self.max_body:
                await _reply(send, 413, f"request body over {self.max_body} bytes")
                return
            if not msg.get("more_body", False):
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"cache-control", b"no-store"), *(extra or [])]})
    await send({"type": "http.response.body", "body": payload})
