"""Wire channels and the renderer from settings (the notifiers package owns the adapters)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from notifiers.base import Channel
from vigil.settings import Settings


def build_channels(settings: Settings) -> dict[str, Channel]:
    from notifiers.registry import build_channels as build

    cfg: dict[str, Any] = settings.channels.model_dump(mode="python")
    return build(cfg)


def renderer() -> Callable[[str, str, str, Mapping[str, Any]], Any]:
    from notifiers.render import render

    return render
