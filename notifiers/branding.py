"""The exchange's branding: its name, logo and colours on the confirmation page and in emails.

Settings section ``branding``; the delivery job puts :meth:`BrandingSettings.context` into every
message's context and the confirmation page reads the same values, so the page a message links to
looks like the message.  Colours are checked at load (``#rgb`` / ``#rrggbb``): they are written
into CSS and HTML email, so nothing else may get through.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


class BrandingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("Vigil", min_length=1, max_length=40, description="the exchange's name in messages and pages")
    logo_path: str | None = Field(None, description="a PNG, SVG or JPEG file shown on the confirmation page")
    primary_color: str = Field("#0969da", description="buttons and headings")
    danger_color: str = Field("#c5221f", description='the "not me" button')
    support_hours: str = Field("", max_length=120, description='e.g. "24/7"; said on the page after "not me"')

    @field_validator("primary_color", "danger_color")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _HEX.match(v):
            raise ValueError(f"{v!r} is not a colour like #0969da")
        return v.lower()

    def context(self) -> dict[str, Any]:
        """What a message's rendering context carries of the brand."""
        return {"brand": self.name, "brand_color": self.primary_color}
