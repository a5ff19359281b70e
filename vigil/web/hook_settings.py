"""The ``web.twilio`` settings section, in a module of its own so that ``vigil.settings`` can
import it without importing the web application."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class TwilioHookSettings(BaseModel):
    """The ``web.twilio`` settings section."""

    model_config = ConfigDict(extra="forbid")
    public_url: str | None = Field(default=None, description="the scheme://host[/prefix] Twilio calls; "
                                                             "default web.base_url")
    auth_token: SecretStr | None = Field(default=None, description="default: channels.sms.auth_token")
    shared_key: SecretStr | None = Field(default=None, description="secret of HMAC-SHA256 shared-key signing")
    max_bad_codes: int = Field(default=5, ge=1, description="wrong codes per window, then refused")
    bad_code_window_seconds: int = Field(default=3600, ge=60)
    receipt_wait_seconds: float = Field(default=5.0, ge=0, le=30, description="how long a receipt for a "
                                        "message id not yet recorded waits for it")
