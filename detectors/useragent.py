"""A small user-agent parser: browser family and major version, OS family and version, device type.

Freeman et al. back off from the full user-agent string to the browser, the OS and the device
type (research b12), and Auth0's "partial match" (unknown device, known browser) needs the browser
family.  Full parsers (ua-parser, user-agents) know thousands of patterns; the login detectors
need only the common families, so this ordered table keeps the dependency list short.  Unknown
strings come out as ``Other``.  Parsing runs once per distinct string.
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
