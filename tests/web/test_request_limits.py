"""Request limits before parsing, and scoped credentials, on the real application.

Size and content type are refused before any form or JSON parser runs (a multipart upload is
415, never 500); the bearer token and Twilio's signature header are checked before the body is
read (the middleware is driven directly with a ``receive`` that fails if it is ever called).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts.store.models import Suppression
from tests.app.helpers import make_app
from vigil.errors import ConfigError
from vigil.settings import load_settings
from vigil.web.app import create_app, create_internal_app
from vigil.web.credentials import Credentials
from vigil.web.limits import FORM, JSON, RequestGuard, Route

STAFF = "staff-alice-" + "a" * 32
FEED = "feed-backend-" + "b" * 32
METRICS = "metrics-scraper-" + "m" * 32


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    app = make_app(db_url, web={"staff_tokens": {"alice": STAFF}, "suppression_tokens": {"backend": FEED},
                                "metrics_token": METRICS, "max_body_bytes": 4096})
    with TestClient(create_app(app), raise_server_exceptions=False) as c:
        c.app_state = app  # type: ignore[attr-defined]
        yield c
    app.close()


def test_a_body_over_the_limit_is_413_before_parsing(client: TestClient) -> None:
    big = "x" * 5000
    for path, kw in [("/c/sometoken12345", {"data": {"answer": "deny", "csrf": big}}),
                     ("/push/action", {"json": {"token": big, "action": "deny"}}),
                     ("/twilio/inbound", {"data": {"Body": big}, "headers": {"X-Twilio-Signature": "x"}})]:
        r = client.post(path, **kw)  # type: ignore[arg-type]
        assert r.status_code == 413, path
        assert "4096 bytes" in r.json()["detail"]


def test_multipart_and_wrong_types_are_415_never_500(client: TestClient) -> None:
    files = {"file": ("a.txt", b"hello", "text/plain")}
    for path in ("/c/sometoken12345", "/push/action", "/twilio/inbound", "/nowhere"):
        r = client.post(path, files=files, headers={"X-Twilio-Signature": "x"})
        assert r.status_code == 415, path
    assert client.post("/c/sometoken12345", json={"answer": "deny"}).status_code == 415
    assert client.post("/push/action", data={"token": "x" * 32, "action": "deny"}).status_code == 415
    auth = {"Authorization": f"Bearer {FEED}"}
    assert client.post("/api/suppressions", files=files, headers=auth).status_code == 415


def test_twilio_without_its_signature_header_is_403(client: TestClient) -> None:
    assert client.post("/twilio/inbound", data={"Body": "N 1234"}).status_code == 403


def _never(*_: Any) -> Any:
    raise AssertionError("the body was read")


async def _run(guard: RequestGuard, scope: dict[str, Any], receive: Any = _never) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await guard(scope, receive, send)
    return sent


def _arun(coro: Any) -> Any:
    """Run a coroutine on its own loop in a worker thread (Playwright may hold this thread's loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def test_credentials_and_signature_header_are_checked_before_the_body_is_read() -> None:
    creds = Credentials({"alice": STAFF}, what="staff API", setting="web.staff_tokens")
    guard = RequestGuard(_never, max_body=65536, routes=[Route("/staff/api", JSON, auth=creds),
                                                         Route("/twilio/", FORM, header="x-twilio-signature")])
    out = _arun(_run(guard, _scope("/staff/api/tickets/t1/resolve", {"content-type": "application/json"})))
    assert out[0]["status"] == 401
    out = _arun(_run(guard, _scope("/twilio/inbound", {"content-type": FORM[0]})))
    assert out[0]["status"] == 403
    out = _arun(_run(guard, _scope("/staff/api/x", {"content-type": "application/json",
                                                           "content-length": "999999",
                                                           "authorization": f"Bearer {STAFF}"})))
    assert out[0]["status"] == 413


def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 1024, "more_body": True} for _ in range(100)]
    served: list[Any] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def app(scope: Any, rcv: Any, send: Any) -> None:
        served.append(scope)

    guard = RequestGuard(app, max_body=8192, routes=[Route("/push/action", JSON)])
    out = _arun(_run(guard, _scope("/push/action", {"content-type": "application/json"}), receive))
    assert out[0]["status"] == 413 and not served
    assert len(chunks) == 100 - 9  # stopped reading right after the limit


def test_each_api_has_its_own_tokens_and_the_actor_is_the_token_name(client: TestClient) -> None:
    body = {"account_id": "A1", "kind": "travel", "countries": ["JP"], "starts_at": "2026-03-05T00:00:00Z",
            "expires_at": "2026-03-12T00:00:00Z"}
    assert client.post("/api/suppressions", json=body, headers={"Authorization": f"Bearer {STAFF}"}
                       ).status_code == 401  # the staff token does not open the feed
    assert client.get("/staff/api/tickets", headers={"Authorization": f"Bearer {FEED}"}).status_code == 401
    assert client.get("/staff/api/tickets", headers={"Authorization": f"Bearer {STAFF}"}).status_code == 200
    claimed = client.post("/api/suppressions", json={**body, "created_by": "ceo"},
                          headers={"Authorization": f"Bearer {FEED}"})
    assert claimed.status_code == 422
    ok = client.post("/api/suppressions", json=body, headers={"Authorization": f"Bearer {FEED}"})
    assert ok.status_code == 201 and ok.json()["created_by"] == "api:backend"
    app = client.app_state  # type: ignore[attr-defined]
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1


def test_metrics_and_openapi_need_their_token(client: TestClient) -> None:
    for path in ("/metrics", "/openapi.json"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {STAFF}"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {METRICS}"}).status_code == 200


def test_an_internal_listener_takes_metrics_and_openapi_off_the_public_one(db_url: str) -> None:
    app = make_app(db_url, web={"internal_port": 9464})
    public = create_app(app)
    with TestClient(public) as pub, TestClient(create_internal_app(app, public)) as internal:
        assert pub.get("/metrics").status_code == 404 and pub.get("/openapi.json").status_code == 404
        m = internal.get("/metrics")
        assert m.status_code == 200 and "# TYPE vigil_alerts gauge" in m.text
        assert "/c/{token}" in internal.get("/openapi.json").json()["paths"]
    app.close()


@pytest.mark.parametrize("web", [{"staff_tokens": {"alice": "short"}}, {"suppression_tokens": {"b": "x" * 31}},
                                 {"metrics_token": "tiny"}])
def test_short_tokens_are_refused_when_the_settings_load(web: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="32 characters"):
        load_settings(None, web=web)
