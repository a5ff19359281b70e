"""The signed webhook: a real httpx POST to a loopback receiver, then verify, tamper and replay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from notifiers.webhook import (
    WebhookChannel,
    WebhookConfig,
    WebhookVerificationError,
    retry_after,
    sign,
    verify,
)
from tests.notifiers.notify_support import LoopbackHTTP, Reply, message

SECRET = "0123456789abcdef0123456789abcdef-current"
OLD = "fedcba9876543210fedcba9876543210-previous"
NOW = 1_776_175_500


def channel(url: str, **kw: Any) -> WebhookChannel:
    cfg = WebhookConfig(**{"enabled": True, "url": f"{url}/hooks/vigil", "secret": SECRET, **kw})
    return WebhookChannel(cfg, clock=lambda: NOW)


def test_a_signed_post_that_the_receiver_can_verify(http_server: LoopbackHTTP) -> None:
    http_server.route("/hooks/", Reply(204, b"", {"X-Request-Id": "req-77"}))
    ch = channel(http_server.url, headers={"X-Tenant": "ex1"})
    result = ch.send(
        message("webhook", subject="New sign-in", text="Vigil: new sign-in", data={"kind": "country"})
    )
    ch.close()
    assert result.status == "delivered" and result.provider_id == "req-77"
    [req] = http_server.requests
    assert req.path == "/hooks/vigil" and req.method == "POST"
    assert (
        req.headers["content-type"] == "application/json; charset=utf-8" and req.headers["x-tenant"] == "ex1"
    )
    assert req.headers["x-vigil-delivery"] == "ob-1" and req.headers["x-vigil-timestamp"] == str(NOW)
    assert verify(SECRET, req.headers, req.body, now=NOW + 30) == NOW
    body = json.loads(req.body)
    assert body == {
        "type": "vigil.notification",
        "version": 1,
        "delivery_id": "ob-1",
        "alert_id": "al-1",
        "account_id": "acct-1",
        "locale": "en",
        "data": {"kind": "country"},
        "subject": "New sign-in",
        "text": "Vigil: new sign-in",
    }
    assert "ana@example.com" not in req.body.decode() and "+1555" not in req.body.decode(), "no contact data"


def _received(http_server: LoopbackHTTP, **kw: Any) -> tuple[dict[str, str], bytes]:
    http_server.route("/hooks/", Reply(200, {"ok": True}))
    ch = channel(http_server.url, **kw)
    assert ch.send(message("webhook")).ok
    ch.close()
    req = http_server.requests[-1]
    return req.headers, req.body


def test_tampered_body_wrong_secret_and_missing_headers_are_refused(http_server: LoopbackHTTP) -> None:
    headers, body = _received(http_server)
    tampered = body.replace(b'"acct-1"', b'"acct-2"')
    assert tampered != body
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(SECRET, headers, tampered, now=NOW)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify("another-secret-of-at-least-32-chars!", headers, body, now=NOW)
    forged_ts = {**headers, "x-vigil-timestamp": str(NOW + 1)}  # a fresh timestamp on an old signature
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(SECRET, forged_ts, body, now=NOW)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(SECRET, {k: v for k, v in headers.items() if k != "x-vigil-signature"}, body, now=NOW)


def test_a_replayed_request_outside_the_window_is_refused(http_server: LoopbackHTTP) -> None:
    headers, body = _received(http_server)
    assert verify(SECRET, headers, body, now=NOW + 300) == NOW
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(SECRET, headers, body, now=NOW + 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(SECRET, headers, body, now=NOW - 301)


def test_secret_rotation_signs_with_both_keys(http_server: LoopbackHTTP) -> None:
    headers, body = _received(http_server, previous_secret=OLD)
    assert headers["x-vigil-signature"].count("v1=") == 2
    assert verify(OLD, headers, body, now=NOW) == NOW  # a receiver not yet rotated
    assert verify([SECRET], headers, body, now=NOW) == NOW


def test_the_documented_recipe_matches(http_server: LoopbackHTTP) -> None:
    """The verification recipe in the module docstring and docs/channels.md, spelled out."""
    import hashlib
    import hmac

    headers, body = _received(http_server)
    ts = int(headers["x-vigil-timestamp"])
    mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert any(
        hmac.compare_digest(mac, s.removeprefix("v1=")) for s in headers["x-vigil-signature"].split(",")
    )
    assert sign(SECRET, ts, body) == f"v1={mac}"


@pytest.mark.parametrize(
    ("reply", "status", "action", "after"),
    [
        (Reply(500, {"e": 1}), "transient", None, None),
        (Reply(503, {"e": 1}, {"Retry-After": "12"}), "transient", None, 12.0),
        (Reply(429, {"e": 1}, {"Retry-After": "7"}), "transient", "backoff", 7.0),
        (Reply(408, {"e": 1}), "transient", None, None),
        (Reply(400, {"e": 1}), "permanent", None, None),
        (Reply(422, {"e": 1}), "permanent", None, None),
        (Reply(401, {"e": 1}), "permanent", "ops_alert", None),
        (Reply(404, {"e": 1}), "permanent", "ops_alert", None),
        (Reply(410, {"e": 1}), "permanent", "ops_alert", None),
        (Reply(302, b"", {"Location": "https://elsewhere.example/"}), "permanent", "ops_alert", None),
    ],
)
def test_receiver_answers_map_to_results(
    http_server: LoopbackHTTP, reply: Reply, status: str, action: str | None, after: float | None
) -> None:
    http_server.route("/hooks/", reply)
    ch = channel(http_server.url)
    result = ch.send(message("webhook"))
    ch.close()
    assert (result.status, result.action, result.retry_after) == (status, action, after)
    assert len(http_server.requests) == 1, "no redirect followed, no retry inside send"


def test_retry_after_as_an_http_date() -> None:
    assert retry_after("Wed, 15 Apr 2026 14:05:30 GMT", now=1_776_261_900) == 30.0
    assert retry_after("soon", now=NOW) is None


def test_an_unreachable_receiver_is_transient(closed_port: int) -> None:
    ch = channel(f"http://127.0.0.1:{closed_port}", timeout=5)
    result = ch.send(message("webhook"))
    ch.close()
    assert result.status == "transient" and "unreachable" in (result.error or "")


def test_config_is_checked_at_load_and_the_secret_stays_secret() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        WebhookConfig.model_validate(dict(url="https://x.example/h", secret="short"))
    with pytest.raises(ValidationError, match="needs url and secret"):
        WebhookConfig(enabled=True, url="https://x.example/h")
    with pytest.raises(ValidationError, match="not an http"):
        WebhookConfig(url="ftp://x.example/h")
    try:
        WebhookConfig.model_validate(dict(url="https://x.example/h", secret="short-but-secret"))
    except ValidationError as e:
        assert "short-but-secret" not in str(e.errors(include_input=False))
    cfg = WebhookConfig.model_validate(dict(enabled=True, url="https://x.example/h", secret=SECRET))
    assert SECRET not in repr(cfg) and SECRET not in str(WebhookChannel(cfg).describe())
