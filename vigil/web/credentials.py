"""Scoped bearer credentials: one set of named tokens per API, the actor taken from the name.

The staff API (``web.staff_tokens``), the suppressions feed (``web.suppression_tokens``) and the
metrics endpoints (``web.metrics_token``) each have their own tokens, so the exchange backend that
forwards travel notices cannot resolve tickets, and a leaked metrics scraper token opens nothing
else.  Each token has a name; whatever a request does is recorded as done by that name (never by
a name the request body claims).  Tokens are compared in constant time, all of them every time
(no early exit that would time which one matched), and must be at least :data:`MIN_LENGTH`
characters -- shorter ones are refused when the settings load.  No tokens configured: the API
answers 503, never opens.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException

MIN_LENGTH = 32


class Credentials:
    def __init__(self, tokens: Mapping[str, Any], *, what: str, setting: str) -> None:
        self.what = what
        self.setting = setting
        self._tokens: list[tuple[str, bytes]] = []
        for name, tok in tokens.items():
            value = tok.get_secret_value() if hasattr(tok, "get_secret_value") else str(tok or "")
            if not value:
                continue
            if len(value) < MIN_LENGTH:
                raise ValueError(f"{setting}.{name}: a token needs at least {MIN_LENGTH} characters")
            self._tokens.append((str(name), value.encode()))

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def match(self, authorization: str | None) -> str | None:
        """The name of the token in an ``Authorization: Bearer`` header, or None."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = value.strip().encode()
        found = None
        for name, secret in self._tokens:
            if hmac.compare_digest(given, secret) and found is None:
                found = name
        return found

    def who(self, authorization: str | None) -> str:
        """The acting token's name, or an HTTP error: 503 when disabled, 401 when not matched."""
        status, detail = self.refusal(authorization)
        if status:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            raise HTTPException(status, detail, headers=headers)
        return detail

    def refusal(self, authorization: str | None) -> tuple[int, str]:
        """``(0, name)`` when allowed, else ``(status, message)``."""
        if not self.enabled:
            return 503, f"{self.what} disabled: set {self.setting}"
        name = self.match(authorization)
        if name is None:
            return 401, "a valid bearer token is required"
        return 0, name
