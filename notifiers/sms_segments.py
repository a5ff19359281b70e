"""How many SMS segments a text costs, and how to keep Latin text in the cheap encoding.

A carrier bills and delivers an SMS in segments of 140 bytes.  Text that fits the GSM 03.38
alphabet travels as 7-bit septets: 160 per single segment, 153 per part of a concatenated one
(the user-data header takes 7).  Characters of the GSM *extension* table (``^{}\\[~]|€`` and form
feed) cost two septets, an escape plus the character, and an escape pair is never split across
parts.  Anything else forces UCS-2 for the *whole* message: 70 UTF-16 code units per single
segment, 67 per part, and a surrogate pair (an emoji) is never split either.

One accented city name (``São Paulo``) in an English message is enough to cut its budget from
160 to 70 characters, which is why :func:`fold_to_gsm` exists: the renderer folds *evidence*
values to GSM-7 for locales whose own wording is GSM-7.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}

# Common typography that has a GSM-7 spelling; everything else falls back to NFKD + "?".
_FOLD = {
    "…": "...",
    "‘": "'",
    "’": "'",
    "‚": ",",
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "–": "-",
    "—": "-",
    "‐": "-",
    "−": "-",
    "•": "*",
    "·": ".",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
    "`": "'",
    "´": "'",
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "Đ": "D",
    "œ": "oe",
    "Œ": "OE",
    "ı": "i",
    "×": "x",
}


@dataclass(frozen=True)
class SmsInfo:
    """``units`` are septets for GSM-7 and UTF-16 code units for UCS-2."""

    encoding: Encoding
    units: int
    segments: int

    @property
    def single_limit(self) -> int:
        return SINGLE[self.encoding]


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def encoding(text: str) -> Encoding:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def analyse(text: str) -> SmsInfo:
    """Encoding, length in units and segment count, never splitting an escape or surrogate pair."""
    enc = encoding(text)
    if enc == "GSM-7":
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    units = sum(costs)
    if units <= SINGLE[enc]:
        return SmsInfo(enc, units, 1 if units else 0)
    return SmsInfo(enc, units, _pack(costs, PART[enc]))


def segment_count(text: str) -> int:
    return analyse(text).segments


def max_chars(enc: Encoding, segments: int) -> int:
    """The most single-unit characters that fit ``segments`` segments of ``enc``."""
    if segments <= 0:
        return 0
    return SINGLE[enc] if segments == 1 else PART[enc] * segments


def fits(text: str, max_segments: int) -> bool:
    return analyse(text).segments <= max_segments


def fold_to_gsm(text: str) -> str:
    """Spell ``text`` in the GSM-7 alphabet: typography mapped, accents dropped, the rest ``?``.

    Used on evidence values (city names, devices) so one foreign letter does not switch a whole
    English SMS to UCS-2.  Characters already in GSM-7 (``é``, ``ñ``, ``ü``) are kept.
    """
    out: list[str] = []
    for c in text:
        if c in GSM7_BASIC or c in GSM7_EXTENSION:
            out.append(c)
        elif c in _FOLD:
            out.append(_FOLD[c])
        else:
            base = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
            out.append(base if base and is_gsm7(base) else "?")
    return "".join(out)


def _pack(costs: list[int], per_part: int) -> int:
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def estimate(units: int, enc: Encoding) -> int:
    """Segments for ``units`` single-cost units (no pairs): the textbook formula, for docs and tests."""
    if units <= SINGLE[enc]:
        return 1 if units else 0
    return math.ceil(units / PART[enc])
