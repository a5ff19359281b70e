"""The exchange's branding: its name, logo and colours on the confirmation page and in emails.

Settings section ``branding``; the delivery job puts :meth:`BrandingSettings.context` into every
message's context and the confirmation page reads the same values, so the page a message links to
looks like the message.  Colours are checked at load (``#rgb`` / ``#rrggbb``): they are written
into CSS and HTML email, so nothing else may get through.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
EMAIL_LOGO_TYPES = ("image/png", "image/jpeg")  # mail clients do not show SVG
LOGO_CID = "brand-logo"  # the logo travels inside the email (multipart/related), never fetched from a server
MAX_LOGO_BYTES = 200_000


class BrandingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("Vigil", min_length=1, max_length=40, description="the exchange's name in messages and pages")
    logo_path: str | None = Field(None, description="a PNG, SVG or JPEG file shown on the confirmation page")
    primary_color: str = Field("#0969da", description="buttons and headings")
    danger_color: str = Field("#c5221f", description='the "not me" button')
    support_hours: str = Field("", max_length=120, description='e.g. "24/7"; said on the page after "not me"')

    @field_validator("logo_path")
    @classmethod
    def _logo(cls, v: str | None) -> str | None:
        if v is None:
            return v
        p = Path(v)
        if p.suffix.lower() not in LOGO_TYPES:
            raise ValueError(f"{v!r}: a logo is a .png, .svg, .jpg or .jpeg file")
        if not p.is_file():
            raise ValueError(f"{v!r}: no such file")
        if p.stat().st_size > MAX_LOGO_BYTES:
            raise ValueError(f"{v!r}: {p.stat().st_size} bytes; a logo travels in every email, keep it under "
                             f"{MAX_LOGO_BYTES // 1000} kB")
        return v

    @field_validator("primary_color", "danger_color")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _HEX.match(v):
            raise ValueError(f"{v!r} is not a colour like #0969da")
        return v.lower()

    @cached_property
    def email_logo(self) -> tuple[bytes, str] | None:
        """The logo's bytes and type for HTML email (PNG or JPEG; an SVG logo shows on the page only)."""
        if not self.logo_path:
            return None
        kind = LOGO_TYPES[Path(self.logo_path).suffix.lower()]
        if kind not in EMAIL_LOGO_TYPES:
            return None
        try:
            return Path(self.logo_path).read_bytes(), kind
        except OSError:
            return None

    def context(self) -> dict[str, Any]:
        """What a message's rendering context carries of the brand."""
        return {"brand": self.name, "brand_color": self.primary_color, "brand_logo": self.email_logo is not None}
