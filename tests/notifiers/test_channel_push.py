"""The push channel on the real firebase-admin SDK against a loopback FCM endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from notifiers.push import PushChannel, PushConfig
from notifiers.render import render
from tests.notifiers.notify_support import (
    LoopbackHTTP,
    Recorded,
    Reply,
    fake_firebase_credential,
    fcm_error,
    loopback,
    message,
    service_account_file,
)

SEND_PATH = "/v1/projects/demo-alerts/messages:send"
OK = Reply(200, {"name": "projects/demo-alerts/messages/0:1700000000000000%abc"})


@pytest.fixture(scope="module")
def _server() -> Iterator[LoopbackHTTP]:
    with loopback() as srv:
        yield srv


@pytest.fixture
def fcm(_server: LoopbackHTTP) -> LoopbackHTTP:
    """The module's loopback FCM, reset: every send answers OK unless a test routes otherwise."""
    _server.requests.clear()
    _server._routes.clear()
    _server._queues.clear()
    _server.route(SEND_PATH, OK)
    return _server


def _config(url: str, **kw: Any) -> PushConfig:
    return PushConfig(
        **{
            "enabled": True,
            "project_id": "demo-alerts",
            "endpoint": f"{url}/v1/projects/{{project}}/messages:send",
            **kw,
        }
    )


@pytest.fixture(scope="module")
def _shared(_server: LoopbackHTTP) -> Iterator[PushChannel]:
    ch = PushChannel(_config(_server.url), credential=fake_firebase_credential())
    yield ch
    ch.close()


@pytest.fixture
def make(fcm: LoopbackHTTP, _shared: PushChannel) -> Iterator[Any]:
    """``make()`` is the module's channel (building one costs the SDK ~0.5 s); ``make(**cfg)`` a new one."""
    built: list[PushChannel] = []

    def _make(**kw: Any) -> PushChannel:
        if not kw:
            return _shared
        ch = PushChannel(_config(fcm.url, **kw), credential=fake_firebase_credential())
        built.append(ch)
        return ch

    yield _make
    for ch in built:
        ch.close()


def push_message(**kw: Any) -> Any:
    from tests.notifiers.notify_support import context

    r = render("new_location", "push", "ja", context("new_location", locale="ja"))
    return message("push", subject=r.subject, text=r.text, data=r.data, locale="ja", **kw)


def test_guard_the_private_seam_this_channel_relies_on() -> None:
    """firebase-admin has no FCM endpoint setting; if these internals move, pin or adapt."""
    import firebase_admin
    from firebase_admin import messaging

    assert firebase_admin.__version__.startswith("7.7.")
    assert hasattr(messaging._MessagingService, "FCM_URL")
    assert callable(messaging._get_messaging_service)
    app = firebase_admin.initialize_app(
        fake_firebase_credential(), {"projectId": "demo-alerts"}, name="guard"
    )
    try:
        service = messaging._get_messaging_service(app)
        assert service._fcm_url.endswith("/v1/projects/demo-alerts/messages:send")
        assert hasattr(service._client.session, "mount")
    finally:
        firebase_admin.delete_app(app)


def test_sends_a_data_message_with_actions_category_and_loc_keys(make: Any, fcm: LoopbackHTTP) -> None:
    ch = make()
    result = ch.send(push_message())
    assert (
        result.status == "sent"
        and result.provider_id == "projects/demo-alerts/messages/0:1700000000000000%abc"
    )
    [req] = fcm.requests
    assert req.path == SEND_PATH
    assert req.headers["authorization"] == "Bearer test-access-token"
    assert req.headers["x-goog-api-format-version"] == "2"
    body = req.json()
    assert "validate_only" not in body
    msg = body["message"]
    assert msg["token"] == "fcm-token-1" and "notification" not in msg, (
        "a data message: the app draws the actions"
    )
    data = msg["data"]
    assert data["actions"] == "confirm,deny" and data["confirm_title"] == "本人です"
    assert (
        data["deny_title"] == "本人ではない（凍結）"
        and data["alert_id"] == "al-1"
        and data["outbox_id"] == "ob-1"
    )
    assert (
        data["title_loc_key"] == "vigil_new_location_title"
        and json.loads(data["loc_args"])[0] == "フランス・Paris"
    )
    assert data["confirm_url"] == "https://alerts.exchange.example/c/tok123"
    assert "BLUE42" in data["body"] and all(isinstance(v, str) for v in data.values())
    assert msg["android"] == {"priority": "high", "ttl": "900s", "collapse_key": "al-1"}
    aps = msg["apns"]["payload"]["aps"]
    assert aps["category"] == "VIGIL_SECURITY_ALERT" and aps["alert"]["title"].startswith("フランス・Paris")
    assert msg["apns"]["headers"]["apns-priority"] == "10"
    actions = msg["webpush"]["notification"]["actions"]
    assert [a["action"] for a in actions] == ["confirm", "deny"]
    assert msg["webpush"]["fcm_options"]["link"] == "https://alerts.exchange.example/c/tok123"


def test_dry_run_asks_fcm_to_validate_only(make: Any, fcm: LoopbackHTTP) -> None:
    assert make(dry_run=True).send(push_message()).status == "sent"
    assert fcm.requests[0].json()["validate_only"] is True


def test_ios_loc_keys_and_fid_target_are_options(make: Any, fcm: LoopbackHTTP) -> None:
    make(apns_loc_keys=True, target="fid").send(push_message(push_token="fid-123"))
    msg = fcm.requests[0].json()["message"]
    assert msg["fid"] == "fid-123" and "token" not in msg
    alert = msg["apns"]["payload"]["aps"]["alert"]
    assert (
        alert["loc-key"] == "vigil_new_location_body" and alert["title-loc-key"] == "vigil_new_location_title"
    )
    assert alert["loc-args"][0] == "フランス・Paris"


ERRORS = [
    (404, "UNREGISTERED", "NOT_FOUND", {}, "permanent", "prune_token", None),
    (403, "SENDER_ID_MISMATCH", "PERMISSION_DENIED", {}, "permanent", "prune_token", None),
    (429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", {"Retry-After": "17"}, "transient", "backoff", 17.0),
    (429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", {}, "transient", "backoff", 60.0),
    (401, "THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", {}, "permanent", "ops_alert", None),
    (401, "APNS_AUTH_ERROR", "UNAUTHENTICATED", {}, "permanent", "ops_alert", None),
    (401, None, "UNAUTHENTICATED", {}, "permanent", "ops_alert", None),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", {}, "permanent", None, None),
    (503, "UNAVAILABLE", "UNAVAILABLE", {}, "transient", None, None),
    (500, "INTERNAL", "INTERNAL", {}, "transient", None, None),
]


@pytest.mark.parametrize(("http", "fcm_code", "grpc", "headers", "status", "action", "retry_after"), ERRORS)
def test_fcm_errors_map_to_status_and_action(
    make: Any,
    fcm: LoopbackHTTP,
    http: int,
    fcm_code: str | None,
    grpc: str,
    headers: dict[str, str],
    status: str,
    action: str | None,
    retry_after: float | None,
) -> None:
    fcm.route(SEND_PATH, Reply(http, fcm_error(http, fcm_code, grpc, "refused"), headers))
    result = make().send(push_message())
    sends = fcm.paths().count(SEND_PATH)
    assert sends == (3 if http == 401 else 1), "no SDK retries (google-auth re-tries a 401 after a refresh)"
    assert (result.status, result.action, result.retry_after) == (status, action, retry_after)
    assert "refused" in (result.error or "")


def test_no_token_is_skipped_without_a_request(make: Any, fcm: LoopbackHTTP) -> None:
    assert make().send(push_message(push_token=None)).status == "skipped"
    assert fcm.requests == []


def test_an_unreachable_endpoint_is_transient(closed_port: int) -> None:
    ch = PushChannel(
        PushConfig(
            enabled=True,
            project_id="demo-alerts",
            timeout=5,
            endpoint=f"http://127.0.0.1:{closed_port}/v1/projects/{{project}}/messages:send",
        ),
        credential=fake_firebase_credential(),
    )
    try:
        assert ch.send(push_message()).status == "transient"
    finally:
        ch.close()


def _token_endpoint(public_key: Any, seen: list[dict[str, Any]]) -> Any:
    import jwt

    def answer(req: Recorded) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        claims = jwt.decode(
            form["assertion"],
            public_key,
            algorithms=["RS256"],
            audience=form and None,
            options={"verify_aud": False},
        )
        seen.append(claims)
        return Reply(200, {"access_token": "ya29.from-loopback", "expires_in": 3600, "token_type": "Bearer"})

    return answer


def test_production_path_service_account_key_signs_a_token_request(tmp_path: Path, fcm: LoopbackHTTP) -> None:
    """The credentials_file path: google-auth signs a JWT with the key and trades it for a token."""
    key_file, public_key = service_account_file(tmp_path, f"{fcm.url}/token")
    claims: list[dict[str, Any]] = []
    fcm.route("/token", _token_endpoint(public_key, claims))
    ch = PushChannel(
        PushConfig(
            enabled=True,
            credentials_file=str(key_file),
            endpoint=f"{fcm.url}/v1/projects/{{project}}/messages:send",
        )
    )
    try:
        assert ch.project_id == "demo-alerts"
        assert ch.send(push_message()).status == "sent"
    finally:
        ch.close()
    assert [r.path for r in fcm.requests] == ["/token", SEND_PATH]
    assert claims[0]["iss"] == "vigil@demo-alerts.iam.gserviceaccount.com"
    assert "firebase.messaging" in claims[0]["scope"] or "cloud-platform" in claims[0]["scope"]
    assert fcm.requests[1].headers["authorization"] == "Bearer ya29.from-loopback"


def test_a_refused_token_request_is_an_operator_problem(tmp_path: Path, fcm: LoopbackHTTP) -> None:
    key_file, _ = service_account_file(tmp_path, f"{fcm.url}/token")
    fcm.route("/token", Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}))
    ch = PushChannel(
        PushConfig(
            enabled=True,
            credentials_file=str(key_file),
            endpoint=f"{fcm.url}/v1/projects/{{project}}/messages:send",
        )
    )
    try:
        result = ch.send(push_message())
    finally:
        ch.close()
    assert (result.status, result.action) == ("permanent", "ops_alert") and "invalid_grant" in (
        result.error or ""
    )
    assert SEND_PATH not in fcm.paths()


def test_config_validates_the_key_file_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        PushConfig(credentials_file=str(tmp_path / "missing.json"))
    bad = tmp_path / "user.json"
    bad.write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    with pytest.raises(ValidationError, match="not a service-account key"):
        PushConfig(credentials_file=str(bad))
    with pytest.raises(ValueError, match="needs credentials_file"):
        PushChannel(PushConfig(enabled=True, project_id="p"))
    with pytest.raises(ValidationError, match="Extra inputs"):
        PushConfig.model_validate(dict(api_key="x"))
