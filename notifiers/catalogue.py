"""Message catalogues: one YAML file per locale under ``notifiers/locales``.

Why YAML rather than gettext: the strings are few, translators edit them with comments beside
them, and there is no compile step to forget.  Keys are dotted paths (``new_location.subject``);
values use ``{name}`` placeholders, substituted by :func:`fill` -- never ``str.format``, so a
catalogue string cannot reach attributes of the values it formats.

A locale tag from the account (BCP 47: ``zh-Hant-HK``, ``ja-JP``, ``en_GB``) is narrowed to one
of :data:`LOCALES` by :func:`catalogue_locale`; a language without a catalogue reads English.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = ("en", "zh-CN", "zh-TW", "ko", "ja")
DEFAULT_LOCALE = "en"
LOCALE_DIR = Path(__file__).parent / "locales"

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_TRADITIONAL = {"hant", "tw", "hk", "mo"}


class CatalogueError(LookupError):
    """A key is missing from the English catalogue, or a placeholder has no value."""


def catalogue_locale(tag: str | None) -> str:
    """``zh-Hant-HK`` -> ``zh-TW``, ``zh_SG`` -> ``zh-CN``, ``ja-JP`` -> ``ja``, ``fr`` -> ``en``."""
    parts = (tag or DEFAULT_LOCALE).replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        return "zh-TW" if _TRADITIONAL.intersection(parts[1:]) else "zh-CN"
    return parts[0] if parts[0] in ("en", "ko", "ja") else DEFAULT_LOCALE


@cache
def load(locale: str, directory: str = str(LOCALE_DIR)) -> Mapping[str, str]:
    """The flattened catalogue of one locale (``{"new_location.subject": "..."}``)."""
    from ruamel.yaml import YAML

    path = Path(directory) / f"{locale}.yaml"
    if not path.is_file():
        return {}
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: the top level must be a mapping of keys to strings")
    flat: dict[str, str] = {}
    _flatten(data, "", flat, path)
    return flat


def lookup(locale: str, key: str, directory: str = str(LOCALE_DIR)) -> str:
    """The string for ``key`` in ``locale``, else in English; a key English lacks is a bug."""
    for loc in (locale, DEFAULT_LOCALE):
        value = load(loc, directory).get(key)
        if value is not None:
            return value
    raise CatalogueError(f"{directory}/{DEFAULT_LOCALE}.yaml: no message {key!r}")


def fill(text: str, values: Mapping[str, Any], key: str = "", missing: str | None = None) -> str:
    """Substitute ``{name}``; a value that is absent or None raises, or reads ``missing`` if given
    (a message must still go out when one piece of evidence is unknown)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values or values[name] is None:
            if missing is not None:
                return missing
            raise CatalogueError(f"message {key!r} needs {{{name}}}, which was not given")
        return str(values[name])

    return _PLACEHOLDER.sub(sub, text)


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def _flatten(node: Any, prefix: str, out: dict[str, str], path: Path) -> None:
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, key + ".", out, path)
        elif isinstance(v, str):
            out[key] = v
        else:
            raise CatalogueError(f"{path}: {key}: expected a string, got {type(v).__name__}")
