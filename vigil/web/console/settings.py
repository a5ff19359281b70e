"""Settings of the staff console (``web.console``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    session_idle_minutes: int = Field(30, ge=1, le=24 * 60, description="a session ends after this long unused")
    session_hours: int = Field(12, ge=1, le=7 * 24, description="and after this long in any case")
    cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: Secure cookies unless web.base_url is plain http on a loopback host "
                            "(development)")
    page_size: int = Field(50, ge=10, le=500)
