"""Confirmation secrets: link tokens (>= 128 random bits, stored as SHA-256 only) and SMS codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    """192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_sms_code() -> str:
    """A 4-digit code that, with the registered number, identifies the alert an SMS answers."""
    return f"{secrets.randbelow(9000) + 1000}"


def csrf_for(secret: str, token: str) -> str:
    """Form token bound to the link token: a forged cross-site POST cannot know it."""
    return hmac.new(secret.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()[:32]


def csrf_ok(secret: str, token: str, value: str) -> bool:
    return hmac.compare_digest(csrf_for(secret, token), value or "")
