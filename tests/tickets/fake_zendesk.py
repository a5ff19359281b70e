"""A loopback Zendesk Tickets API that checks the documented request shapes.

What it enforces (developer.zendesk.com, Ticketing › Tickets): Basic auth as
``{email}/token:{api_token}``; JSON bodies ``{"ticket": {...}}``; a ``comment`` with a ``body`` is
required to create; ``priority`` in urgent/high/normal/low; ``status`` in
new/open/pending/hold/solved/closed; ``tags`` a list of strings; a closed ticket cannot be updated
(422); ``GET /api/v2/tickets.json?external_id=`` lists tickets by external id; unknown ids are 404.
Every request is recorded so tests can assert what was sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PRIORITIES = {"urgent", "high", "normal", "low"}
STATUSES = {"new", "open", "pending", "hold", "solved", "closed"}
TICKET_FIELDS = {"subject", "comment", "priority", "status", "external_id", "tags", "type", "requester",
                 "assignee_id", "group_id", "custom_fields"}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeZendesk:
    email: str
    token: str
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def auth_ok(self, header: str | None) -> bool:
        want = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        return header == f"Basic {want}"

    def check_ticket(self, body: Any, creating: bool) -> str | None:
        if not isinstance(body, dict) or set(body) != {"ticket"} or not isinstance(body["ticket"], dict):
            return 'the body must be {"ticket": {...}}'
        t = body["ticket"]
        unknown = set(t) - TICKET_FIELDS
        if unknown:
            return f"unknown ticket fields {sorted(unknown)}"
        if creating and not (isinstance(t.get("comment"), dict) and isinstance(t["comment"].get("body"), str)
                             and t["comment"]["body"]):
            return "comment.body is required to create a ticket"
        if "comment" in t and not (set(t["comment"]) <= {"body", "public", "html_body", "author_id"}):
            return "bad comment"
        if "priority" in t and t["priority"] not in PRIORITIES:
            return f"priority {t['priority']!r} is invalid"
        if "status" in t and t["status"] not in STATUSES:
            return f"status {t['status']!r} is invalid"
        if "tags" in t and not (isinstance(t["tags"], list) and all(isinstance(x, str) for x in t["tags"])):
            return "tags must be a list of strings"
        if "external_id" in t and not isinstance(t["external_id"], str):
            return "external_id must be a string"
        return None


def serve(fake: FakeZendesk, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            return None

        def _send(self, code: int, data: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            u = urlparse(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            body = json.loads(raw) if raw else None
            with fake.lock:
                fake.calls.append(Call(self.command, u.path, parse_qs(u.query), body))
                if fake.fail_next:
                    code, headers = fake.fail_next.pop(0)
                    return self._send(code, {"error": "injected"}, headers)
            if not fake.auth_ok(self.headers.get("Authorization")):
                return self._send(401, {"error": "Couldn't authenticate you"})
            if self.command in ("POST", "PUT") and not (self.headers.get("Content-Type") or "").startswith(
                    "application/json"):
                return self._send(415, {"error": "Content-Type must be application/json"})
            with fake.lock:
                self._route(u.path, parse_qs(u.query), body)

        def _route(self, path: str, query: dict[str, list[str]], body: Any) -> None:
            one = re.fullmatch(r"/api/v2/tickets/(\d+)\.json", path)
            if self.command == "GET" and path == "/api/v2/tickets.json":
                ext = (query.get("external_id") or [None])[0]
                found = [t for t in fake.tickets.values() if ext is None or t.get("external_id") == ext]
                return self._send(200, {"tickets": found, "count": len(found), "next_page": None,
                                        "previous_page": None})
            if self.command == "POST" and path == "/api/v2/tickets.json":
                err = fake.check_ticket(body, creating=True)
                if err:
                    return self._send(422, {"error": "RecordInvalid", "description": err})
                fake.next_id += 1
                t = {k: v for k, v in body["ticket"].items() if k != "comment"}
                t.update(id=fake.next_id, status=t.get("status", "new"), comments=[body["ticket"]["comment"]])
                fake.tickets[fake.next_id] = t
                return self._send(201, {"ticket": t})
            if one and self.command in ("GET", "PUT"):
                t = fake.tickets.get(int(one.group(1)))
                if t is None:
                    return self._send(404, {"error": "RecordNotFound", "description": "Not found"})
                if self.command == "GET":
                    return self._send(200, {"ticket": t})
                err = fake.check_ticket(body, creating=False)
                if err:
                    return self._send(422, {"error": "RecordInvalid", "description": err})
                if t["status"] == "closed":
                    return self._send(422, {"error": "RecordInvalid",
                                            "description": "Status: closed prevents ticket update"})
                upd = dict(body["ticket"])
                if "comment" in upd:
                    t["comments"].append(upd.pop("comment"))
                t.update(upd)
                return self._send(200, {"ticket": t, "audit": {"events": []}})
            return self._send(404, {"error": "InvalidEndpoint"})

        do_GET = do_POST = do_PUT = _handle

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
