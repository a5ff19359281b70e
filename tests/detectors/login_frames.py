"""Hand-built login frames for the login detector tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from detectors.base import Detector, DetectorResult, Finding
from detectors.batch import Batch

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SEOUL = {"country": "KR", "city": "Seoul", "lat": 37.5665, "lon": 126.9780}
BUSAN = {"country": "KR", "city": "Busan", "lat": 35.1796, "lon": 129.0756}
TOKYO = {"country": "JP", "city": "Tokyo", "lat": 35.6762, "lon": 139.6503}
SAO_PAULO = {"country": "BR", "city": "São Paulo", "lat": -23.5475, "lon": -46.6361}
HOME = {**SEOUL, "ip": "121.134.10.5", "asn": 4766, "device_id": "dev-1", "user_agent": CHROME}


def login(eid: str, at: datetime | float, account: str = "alice", success: bool = True, **cols: Any) -> dict[str, Any]:
    """One login row; ``at`` is a datetime or hours after T0."""
    ts = at if isinstance(at, datetime) else T0 + timedelta(hours=at)
    return {"event_id": eid, "account_id": account, "ts": ts, "success": success, **cols}


def history(n: int, account: str = "alice", every_hours: float = 24.0, **cols: Any) -> list[dict[str, Any]]:
    """``n`` successful logins from home, one every ``every_hours``."""
    base = {**HOME, **cols}
    return [login(f"{account}-h{i:03d}", i * every_hours, account, **base) for i in range(n)]


def batch(rows: Sequence[Mapping[str, Any]], drop: Sequence[str] = ()) -> Batch:
    df = pd.DataFrame(list(rows))
    return Batch.from_frames({"logins": df.drop(columns=[c for c in drop if c in df.columns])})


def scan(
    det: Detector,
    rows: Sequence[Mapping[str, Any]],
    profiles: Mapping[str, Any] | None = None,
    drop: Sequence[str] = (),
) -> DetectorResult:
    return det.scan(batch(rows, drop), profiles or {}, now=NOW)


def scan_in_parts(det: Detector, rows: Sequence[Mapping[str, Any]], parts: int) -> list[Finding]:
    """Scan time-ordered rows in ``parts`` consecutive batches, carrying the profiles."""
    ordered = sorted(rows, key=lambda r: (r["ts"], r["event_id"]))
    size = -(-len(ordered) // parts)
    profiles: dict[str, Any] = {}
    found: list[Finding] = []
    for i in range(0, len(ordered), size):
        res = det.scan(batch(ordered[i : i + size]), profiles, now=NOW)
        profiles = {**profiles, **res.profiles}
        found.extend(res.findings)
    return found


def ids(findings: Sequence[Finding]) -> list[tuple[str, ...]]:
    return sorted(f.event_ids for f in findings)
