"""The closed channel registry and ``build_channels(settings)``.

``CHANNELS`` names every built-in channel; YAML never names an import path.  A third party adds
one through the ``vigil.channels`` entry-point group: the object loaded must be a
:class:`~notifiers.base.Channel` subclass, or loading fails with a clear ``LookupError``.

``build_channels`` validates every channel's settings at once (all errors, each naming its key:
``channels.sms.account_sid: ...``), builds the enabled ones, and lets the console stand in for
the channels it lists in ``stand_in_for`` that are not enabled -- so the embedded default maps
``sms``, ``push`` and ``email`` to the console and ``vigil demo`` shows every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

import confkit
from confkit import suggest
from notifiers.base import Channel, ChannelConfig
from notifiers.console import ConsoleChannel, ConsoleConfig
from notifiers.email import EmailChannel
from notifiers.names import ENTRY_POINT_GROUP
from notifiers.push import PushChannel
from notifiers.sms import SmsChannel
from notifiers.webhook import WebhookChannel

CHANNELS: dict[str, type[Channel]] = {
    "console": ConsoleChannel,
    "email": EmailChannel,
    "push": PushChannel,
    "sms": SmsChannel,
    "webhook": WebhookChannel,
}


class ChannelConfigError(ValueError):
    """Channel settings are invalid; ``errors`` lists every problem as ``channels.<name>.<key>: msg``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid channel settings:\n  " + "\n  ".join(errors))
        self.errors = errors


def channel_class(name: str) -> type[Channel]:
    """The class registered as ``name``: built in, or from the ``vigil.channels`` entry points."""
    if name in CHANNELS:
        return CHANNELS[name]
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            obj = ep.load()
            if not (isinstance(obj, type) and issubclass(obj, Channel)):
                raise LookupError(
                    f"entry point {ENTRY_POINT_GROUP}:{name} ({ep.value}) is not a Channel subclass"
                )
            return obj
    known = sorted({*CHANNELS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
    raise LookupError(f"unknown channel {name!r}{suggest(name, known) or '.'} Known channels: {', '.join(known)}")


def validate_channels(settings: Mapping[str, Any] | BaseModel | None) -> dict[str, ChannelConfig]:
    """Every channel's config model, validated; raises :class:`ChannelConfigError` with all errors."""
    raw = _as_dict(settings)
    configs: dict[str, ChannelConfig] = {}
    errors: list[str] = []
    for name, value in raw.items():
        try:
            cls = channel_class(name)
        except LookupError as e:
            errors.append(f"channels.{name}: {e}")
            continue
        if value is not None and not isinstance(value, Mapping | BaseModel):
            errors.append(f"channels.{name}: expected a mapping of settings, got {type(value).__name__}")
            continue
        try:
            configs[name] = cls.config_model.model_validate(_as_dict(value))
        except ValidationError as e:
            errors.extend(_format(name, e))
    if "console" not in configs and "console" not in raw:
        configs["console"] = ConsoleConfig()
    if errors:
        raise ChannelConfigError(errors)
    return configs


def build_channels(
    settings: Mapping[str, Any] | BaseModel | None, *, seams: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Channel]:
    """``{channel name: Channel}`` for every enabled channel, plus the console's stand-ins.

    ``seams`` passes keyword test hooks to a channel's constructor (``{"sms": {"http_client": c}}``).
    A channel whose construction fails (an unreadable key file) is reported like a bad setting.
    """
    configs = validate_channels(settings)
    built: dict[str, Channel] = {}
    errors: list[str] = []
    for name, cfg in configs.items():
        if not cfg.enabled:
            continue
        try:
            built[name] = channel_class(name)(cfg, **dict((seams or {}).get(name, {})))  # type: ignore[call-arg]
        except Exception as e:
            errors.append(f"channels.{name}: {e}")
    if errors:
        for ch in built.values():
            ch.close()
        raise ChannelConfigError(errors)
    console = built.get("console")
    if isinstance(console, ConsoleChannel):
        for name in console.config.stand_in_for:
            built.setdefault(name, console)
    return built


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return {k: getattr(value, k) for k in [*type(value).model_fields, *(value.model_extra or {})]}
    return dict(value)


def _format(name: str, e: ValidationError) -> list[str]:
    model = CHANNELS[name].config_model if name in CHANNELS else ChannelConfig
    return [str(i) for i in confkit.issues(e, model, prefix=("channels", name), noun="setting")]
