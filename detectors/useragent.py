"""A small user-agent parser: browser family and major version, OS family and version, device type.

Freeman et al. back off from the full user-agent string to the browser, the OS and the device
type (research b12), and Auth0's "partial match" (unknown device, known browser) needs the browser
family.  Full parsers (ua-parser, user-agents) know thousands of patterns; the login detectors
need only the common families, so this ordered table keeps the scores independent of a regex
database that changes every month.  Unknown strings come out as ``Other``.  Parsing runs once per
distinct string.

Evidence a person reads is another matter (issue 13): :func:`describe` names the device with
``ua-parser`` (the uap-core regexes, shipped offline in ``ua-parser-builtins``) -- "Chrome 131 on
Windows", "Mobile Safari 17 on iOS (iPhone)" -- and falls back to this table for what it does not
know (a native app: "ExApp 3 on iOS").  It runs only for findings, once per distinct string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

# (family, pattern with the major version in group 1); order matters: Edge and Opera carry "Chrome"
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pat, re.IGNORECASE))
    for name, pat in (
        ("Edge", r"\bEdg(?:e|A|iOS)?/(\d+)"),
        ("Opera", r"\b(?:OPR|Opera)/(\d+)"),
        ("Samsung Internet", r"\bSamsungBrowser/(\d+)"),
        ("Yandex", r"\bYaBrowser/(\d+)"),
        ("UC Browser", r"\bUCBrowser/(\d+)"),
        ("Firefox", r"\b(?:Firefox|FxiOS)/(\d+)"),
        ("Chrome", r"\b(?:Chrome|CriOS)/(\d+)"),
        ("Safari", r"\bVersion/(\d+)[\d.]* (?:Mobile/\S+ )?Safari/"),
        ("curl", r"^curl/(\d+)"),
        ("python-requests", r"python-requests/(\d+)"),
        ("okhttp", r"okhttp/(\d+)"),
        # a native app: "ExchangeApp/3.4.1 (iPhone; iOS 17.2)" -> family "ExchangeApp"
        ("App", r"^([A-Za-z][\w.-]*)/(\d+)[\d.]* \((?:iPhone|iPad|Android|Linux)"),
    )
)
_OS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pat, re.IGNORECASE))
    for name, pat in (
        ("iOS", r"\b(?:iPhone|iPad|iPod)\b.*?\bOS (\d+)|\biOS (\d+)"),
        ("Android", r"\bAndroid (\d+)"),
        ("Windows", r"\bWindows NT (\d+\.\d+)"),
        ("macOS", r"\bMac OS X (\d+)[_.](\d+)"),
        ("ChromeOS", r"\bCrOS\b"),
        ("Linux", r"\bLinux\b"),
    )
)
_WINDOWS = {"10.0": "10", "6.3": "8.1", "6.2": "8", "6.1": "7"}


@dataclass(frozen=True)
class UserAgent:
    browser: str  # "Chrome"
    browser_version: str  # "Chrome 120"
    os: str  # "Windows"
    os_version: str  # "Windows 10"
    device_type: str  # desktop | mobile | tablet | bot | other


@lru_cache(maxsize=65536)
def parse(ua: str) -> UserAgent:
    s = ua.strip()
    browser, bver = "Other", "Other"
    for name, pat in _BROWSERS:
        m = pat.search(s)
        if m:
            if name == "App":
                name = m.group(1)
            browser, bver = name, f"{name} {m.groups()[-1]}"
            break
    os_, over = "Other", "Other"
    for name, pat in _OS:
        m = pat.search(s)
        if m:
            os_ = name
            groups = [g for g in m.groups() if g]
            if name == "Windows" and groups:
                over = f"Windows {_WINDOWS.get(groups[0], groups[0])}"
            elif name == "macOS" and len(groups) >= 2:
                over = f"macOS {groups[0]}.{groups[1]}" if groups[0] == "10" else f"macOS {groups[0]}"
            else:
                over = f"{name} {groups[0]}" if groups else name
            break
    low = s.lower()
    if browser in ("curl", "python-requests", "okhttp") or "bot" in low or "spider" in low:
        device = "bot"
    elif "ipad" in low or "tablet" in low:
        device = "tablet"
    elif "mobile" in low or "iphone" in low or (os_ == "Android"):
        device = "mobile"
    elif os_ in ("Windows", "macOS", "Linux", "ChromeOS"):
        device = "desktop"
    else:
        device = "other"
    return UserAgent(browser, bver, os_, over, device)


_GENERIC = {"Other", "Generic Smartphone", "Generic Feature Phone", "Spider"}
_FAMILIES = {name for name, _ in _BROWSERS if name != "App"}


@lru_cache(maxsize=16384)
def describe(ua: str | None) -> str | None:
    """A short description of the device behind a user-agent string, for messages and tickets."""
    if not isinstance(ua, str) or not ua.strip():
        return None
    own = parse(ua)
    try:
        from ua_parser import parse as uap_parse

        got = uap_parse(ua.strip())
    except Exception:  # the parser is optional at run time: never block a finding on it
        got = None
    browser = got.user_agent if got is not None else None
    native_app = own.browser not in _FAMILIES and own.browser != "Other"  # "ExApp/3.4 (iPhone; ...)"
    if native_app or browser is None or browser.family == "Other" or "WebView" in browser.family:
        name = own.browser_version if own.browser != "Other" else None
    else:
        name = f"{browser.family} {browser.major}" if browser.major else browser.family
    os_ = got.os if got is not None else None
    system = os_.family if os_ is not None and os_.family != "Other" else (own.os if own.os != "Other" else None)
    device = got.device if got is not None else None
    generic = device is None or device.family in _GENERIC or str(device.brand or "").startswith("Generic")
    model = None if generic or device is None else device.family  # not the reduced UA's "K"
    if name is None and system is None:
        return None
    text = f"{name or 'Unknown browser'} on {system}" if system else str(name)
    if model and model != system and (system is None or model not in text):
        text += f" ({model})"
    return text


def parse_series(ua: pd.Series) -> pd.DataFrame:
    """Parse a column of user-agent strings (once per distinct value) into the five levels;
    None where the string is missing or blank."""
    codes, uniq = pd.factorize(ua.astype("object"))
    parsed = [parse(u) if isinstance(u, str) and u.strip() else None for u in (str(v) for v in uniq)]
    out = pd.DataFrame(index=ua.index)
    for field in ("browser", "browser_version", "os", "os_version", "device_type"):
        table = np.array([getattr(p, field) if p else None for p in parsed] + [None], dtype=object)
        out[field] = table[codes]  # code -1 (missing) picks the trailing None
    return out
