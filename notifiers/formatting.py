"""Locale-aware formatting of evidence (Babel): times in the user's zone, amounts, countries.

Everything here is total: a value that cannot be parsed or a time zone that does not exist
falls back to something readable (UTC, the raw value) rather than failing a message that must
go out.  Values that an attacker controls (device names, user agents, city strings taken from
the login request) are cleaned by :func:`safe_text`: control characters removed, length capped,
and URL schemes defanged so a crafted user agent cannot put a clickable link in a security mail.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent

_BABEL_DEFAULT = {"en": "en", "zh-CN": "zh_Hans_CN", "zh-TW": "zh_Hant_TW", "ko": "ko_KR", "ja": "ja_JP"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,15}):/+")
_WWW = re.compile(r"(?i)\bwww\.")
# a domain-like token: labels and dots ending in an alphabetic label (any TLD: .zip and .mov exist)
_DOMAIN = re.compile(r"(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})\b")


@lru_cache(maxsize=256)
def babel_locale(tag: str | None, catalogue: str) -> Locale:
    """The user's own locale for formats (``en-GB`` writes 14/04) when it speaks the catalogue's
    language and script; otherwise the catalogue's default, so dates match the wording."""
    default = Locale.parse(_BABEL_DEFAULT[catalogue])
    if not tag:
        return default
    try:
        loc = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return default
    if loc.language != default.language:
        return default
    if default.script and (loc.script or _likely_script(loc)) != default.script:
        return default
    return loc


def _likely_script(loc: Locale) -> str | None:
    try:
        return Locale.parse(f"{loc.language}_{loc.territory}").script if loc.territory else None
    except (ValueError, UnknownLocaleError):
        return None


def zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def as_utc(value: Any) -> datetime | None:
    """A datetime (naive means UTC), an ISO 8601 string or epoch milliseconds, as aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value) / 1000.0, UTC)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    to_pydatetime = getattr(value, "to_pydatetime", None)  # pandas.Timestamp
    return as_utc(to_pydatetime()) if to_pydatetime else None


def utc_offset(local: datetime) -> str:
    """``UTC+8``, ``UTC+5:30``, ``UTC-3``, ``UTC``: short, and the same in every language."""
    off = local.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"UTC{sign}{h}" + (f":{m:02d}" if m else "")


def time_short(ts: datetime, tz: tzinfo, loc: Locale) -> str:
    """``Apr 14 22:05 UTC+8`` / ``4月14日 22:05 UTC+8``: for SMS and push."""
    local = ts.astimezone(tz)
    return (
        f"{format_skeleton('MMMd', local, locale=loc)} {format_skeleton('Hm', local, locale=loc)} "
        f"{utc_offset(local)}"
    )


def time_full(ts: datetime, tz: tzinfo, loc: Locale) -> str:
    """``Apr 14, 2026, 10:05:00 PM (UTC+8)``: for email, with UTC written out when it differs."""
    local = ts.astimezone(tz)
    text = f"{format_datetime(local, 'medium', locale=loc)} ({utc_offset(local)})"
    if (local.utcoffset() or timedelta(0)) != timedelta(0):
        text += f" = {ts.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return text


def decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


# Dollar-pegged and euro-pegged tokens: written like the money they track (2 decimals, always shown)
STABLECOINS = frozenset({"USDT", "USDC", "BUSD", "DAI", "TUSD", "USDP", "FDUSD", "PYUSD", "USDD", "USDE",
                         "GUSD", "LUSD", "FRAX", "EURC", "EURT", "EURS", "AEUR"})
CRYPTO_DECIMALS = 8  # what exchanges show for a coin (satoshi precision); trailing zeros dropped


def asset_decimals(asset: Any) -> tuple[int, int]:
    """(minimum, maximum) decimals for an amount of ``asset``: fiat by ISO 4217 (KRW 0, JPY 0,
    USD 2), stablecoins like the money they track (2), any other coin up to 8."""
    from babel.numbers import get_currency_precision

    code = str(asset or "").strip().upper()
    if code in STABLECOINS:
        return 2, 2
    if code in _fiat():
        n = get_currency_precision(code)
        return n, n
    return 0, CRYPTO_DECIMALS


@lru_cache(maxsize=1)
def _fiat() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def amount(value: Any, asset: Any, loc: Locale) -> str | None:
    """``0.4859 BTC``, ``41,254.01 USDT``, ``1,000,000 KRW``: the asset's own decimals (see
    :func:`asset_decimals`), digits grouped the locale's way, the code after the number."""
    d = decimal(value)
    if d is None:
        return None
    low, high = asset_decimals(asset)
    pattern = "#,##0" + ("." + "0" * low + "#" * (high - low) if high else "")
    text = format_decimal(d, format=pattern, locale=loc)
    return f"{text} {safe_text(asset, 12)}" if asset else text


def money(value: Any, currency: str, loc: Locale) -> str | None:
    d = decimal(value)
    return None if d is None else format_currency(d, currency, locale=loc)


def number(value: Any, loc: Locale) -> str | None:
    d = decimal(value)
    return None if d is None else format_decimal(d, format="#,##0.########", locale=loc)


def percent(value: Any, loc: Locale) -> str | None:
    d = decimal(value)
    return None if d is None else format_percent(d, format="#,##0.#%", locale=loc)


def leverage(value: Any, loc: Locale) -> str | None:
    d = decimal(value)
    return None if d is None else f"{format_decimal(d, format='#,##0.#', locale=loc)}x"


def country(code: Any, loc: Locale) -> str | None:
    if not code:
        return None
    name = loc.territories.get(str(code).upper())
    return name or safe_text(code, 8)


def safe_text(value: Any, limit: int) -> str | None:
    """Printable, defanged, at most ``limit`` characters (``…`` marks a cut)."""
    if value is None:
        return None
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    text = _SCHEME.sub(r"\1[:]//", text)
    text = _WWW.sub("www[.]", text)
    text = _DOMAIN.sub(lambda m: m.group().replace(".", "[.]"), text)
    if not text:
        return None
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def middle(value: Any, keep: int = 6) -> str | None:
    """``bc1qxy…x0wlh``: an address is recognised by its ends."""
    text = safe_text(value, 200)
    if text is None or len(text) <= 2 * keep + 1:
        return text
    return f"{text[:keep]}…{text[-keep:]}"


def device(description: Any, user_agent: Any, device_id: Any) -> str | None:
    """The device as its owner would name it: the description the evidence offers ("Chrome 131 on
    Windows", from the detectors), else one made from the user agent, else the operator's device
    id (which may be a name like "iPhone 15 Pro", or an opaque id, the last resort)."""
    if description:
        return str(description)
    if isinstance(user_agent, str) and user_agent.strip():
        from detectors.useragent import parse

        ua = parse(user_agent)
        name = ua.browser_version if ua.browser not in ("Other", "Mozilla") else None
        system = ua.os_version if ua.os != "Other" else None
        if name or system:
            return f"{name} on {system}" if name and system else str(name or system)
        return str(user_agent)  # unknown to the parser: the string itself (cleaned by the caller)
    return str(device_id) if device_id else None
