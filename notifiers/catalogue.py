"""The message catalogue: one gettext catalogue (domain ``vigil``) for messages and web pages.

``notifiers/locale/<ll>/LC_MESSAGES/vigil.po`` holds one ``.po`` file per locale (en, zh_CN,
zh_TW, ko, ja).  The message ids are keys (``new_location.subject``, ``page.title``) and English
is a translation like the others, so wording changes never change ids.  ``scripts/i18n`` extracts
the keys the code and templates use with ``pybabel extract`` (keywords ``t``, ``_t:2``,
``lookup:2``, ``N_``) and merges them into every ``.po`` with ``pybabel update``; a test fails on a
key missing, empty or with other placeholders in any locale.  The ``.po`` files are read with
Babel at first use -- there is no compiled ``.mo`` to build or to let go stale.

English strings with ``sms`` in their key stay in the GSM-7 alphabet (no curly quotes, dashes or
ellipses).  Values use ``{name}`` placeholders, substituted by :func:`fill` -- never
``str.format``, so a catalogue string cannot reach attributes of the values it formats.

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
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "vigil"

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_TRADITIONAL = {"hant", "tw", "hk", "mo"}


def N_(key: str) -> str:
    """gettext's marker: the key is extracted by pybabel and looked up later."""
    return key


# keys the code builds at run time (``events.<detector>``, ``label.<field>``, ...), marked for extraction
DYNAMIC_KEYS = (
    N_("events.new_address"), N_("events.withdrawal_after_change"), N_("events.draining"),
    N_("events.trading_spike"), N_("events.isolation"), N_("events.impossible_travel"), N_("events.login_risk"),
    N_("events.new_device"), N_("events.new_subnet"), N_("events.new_asn"), N_("events.failed_logins"),
    N_("events.credential_stuffing"), N_("events.new_location"), N_("events.large_withdrawal"),
    N_("events.high_leverage"), N_("events.withdrawal_risk"), N_("events.generic"),
    N_("label.time_full"), N_("label.time_short"), N_("label.place"), N_("label.ip"), N_("label.device"),
    N_("label.amount"), N_("label.value_usd"), N_("label.address"), N_("label.network"), N_("label.symbol"),
    N_("label.leverage"), N_("label.margin_ratio"), N_("label.liquidation_price"), N_("label.mark_price"),
    N_("label.expires"), N_("label.what"), N_("label.why"), N_("common.list_join"),
    # withdrawal_risk's evidence factors in plain words (``withdrawal_risk.factor_<feature>``, the "why" row)
    N_("withdrawal_risk.factor_address"), N_("withdrawal_risk.factor_amount"), N_("withdrawal_risk.factor_share"),
    N_("withdrawal_risk.factor_change"), N_("withdrawal_risk.factor_device"), N_("withdrawal_risk.factor_network"),
    N_("withdrawal_risk.factor_login"), N_("withdrawal_risk.factor_age"),
    N_("freeze_guidance.sms_next"), N_("freeze_guidance.sms_next_short"),  # chosen by length in the template
    # every message template's subject and push title (``<template>.subject``, ``<template>.push_title``)
    N_("freeze_guidance.subject"), N_("freeze_guidance.push_title"), N_("high_leverage.subject"),
    N_("high_leverage.push_title"), N_("large_withdrawal.subject"), N_("large_withdrawal.push_title"),
    N_("liquidation_risk.subject"), N_("liquidation_risk.push_title"), N_("new_location.subject"),
    N_("new_location.push_title"), N_("reminder.subject"), N_("reminder.push_title"),
    N_("security_alert.subject"), N_("security_alert.push_title"), N_("survey.subject"), N_("survey.push_title"),
    N_("ticket_ack.subject"), N_("ticket_ack.push_title"), N_("ticket_ack.sms"), N_("ticket_ack.sms_short"),
)


class CatalogueError(LookupError):
    """A key is missing from the English catalogue, or a placeholder has no value."""


def catalogue_locale(tag: str | None) -> str:
    """``zh-Hant-HK`` -> ``zh-TW``, ``zh_SG`` -> ``zh-CN``, ``ja-JP`` -> ``ja``, ``fr`` -> ``en``."""
    parts = (tag or DEFAULT_LOCALE).replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        return "zh-TW" if _TRADITIONAL.intersection(parts[1:]) else "zh-CN"
    return parts[0] if parts[0] in ("en", "ko", "ja") else DEFAULT_LOCALE


def po_path(locale: str, directory: str | Path = LOCALE_DIR) -> Path:
    """``zh-CN`` -> ``<directory>/zh_CN/LC_MESSAGES/vigil.po``."""
    return Path(directory) / locale.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def load(locale: str, directory: str = str(LOCALE_DIR)) -> Mapping[str, str]:
    """The translated messages of one locale (``{"new_location.subject": "..."}``); untranslated
    (empty) and fuzzy entries are left out, so they read English."""
    from babel.messages.pofile import PoFileError, read_po

    path = po_path(locale, directory)
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            catalog = read_po(f, locale=locale.replace("-", "_"), domain=DOMAIN, abort_invalid=True)
    except (PoFileError, ValueError) as e:
        raise CatalogueError(f"{path}: {e}") from None
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy}


def lookup(locale: str, key: str, directory: str = str(LOCALE_DIR)) -> str:
    """The string for ``key`` in ``locale``, else in English; a key English lacks is a bug."""
    for loc in (locale, DEFAULT_LOCALE):
        value = load(loc, directory).get(key)
        if value is not None:
            return value
    raise CatalogueError(f"{po_path(DEFAULT_LOCALE, directory)}: no message {key!r}")


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
