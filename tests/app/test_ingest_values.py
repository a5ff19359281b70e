"""Ingest's value checks: storage limits from the models, sane ranges, strict timestamps (no database)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from alerts.store.models import AccountRow, Profile
from vigil.ingest import TS_ATTR, validate
from vigil.limits import text_limits


def _logins(**cols: list[object]) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base: dict[str, list[object]] = {"event_id": [f"e{i}" for i in range(n)], "account_id": ["A1"] * n,
                                     "ts": ["2026-03-01T08:00:00Z"] * n, "success": ["true"] * n}
    return pd.DataFrame({**base, **cols})


def test_limits_come_from_the_models() -> None:
    limits = text_limits()
    assert limits[("logins", "account_id")] == Profile.__table__.c.account_id.type.length == 128
    assert limits[("accounts", "locale")] == AccountRow.__table__.c.locale.type.length == 16
    assert limits[("accounts", "status")] == AccountRow.__table__.c.source_status.type.length


def test_over_long_values_and_nul_bytes_are_quarantined_with_the_limit() -> None:
    raw = _logins(account_id=["A1", "X" * 200, "Y" * 1_000_000, "A\x00B", "A2"])
    good, bad = validate("logins", raw)
    assert list(good["event_id"]) == ["e0", "e4"]
    reasons = {q.ref: q.reason for q in bad}
    assert reasons["logins:row 2"] == "'account_id' is too long: 200 characters (Vigil stores at most 128)"
    assert "1000000 characters" in reasons["logins:row 3"]
    assert reasons["logins:row 4"] == "NUL byte in 'account_id': refused, not truncated"
    huge = next(q for q in bad if q.ref == "logins:row 3")
    assert len(huge.raw["account_id"]) < 600  # the quarantine keeps a prefix, not the megabyte
    assert next(q for q in bad if q.ref == "logins:row 4").raw["account_id"] == "A\\x00B"


def test_a_long_locale_quarantines_the_account_row() -> None:
    good, bad = validate("accounts", pd.DataFrame({"account_id": ["A1", "A2"], "locale": ["ko", "x" * 28]}))
    assert list(good["account_id"]) == ["A1"]
    assert bad[0].reason == "'locale' is too long: 28 characters (Vigil stores at most 16)"


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-01T08:00:00Z", "2026-03-01T08:00:00+00:00"),
    ("2026-03-01 17:00:00+09:00", "2026-03-01T08:00:00+00:00"),
    ("1772352000000", "2026-03-01T08:00:00+00:00"),  # epoch milliseconds
    ("1772352000", "2026-03-01T08:00:00+00:00"),  # epoch seconds, by magnitude: never 1970-01-21
    ("1772352000.5", "2026-03-01T08:00:00.500000+00:00"),
])
def test_accepted_timestamps(value: str, expected: str) -> None:
    good, bad = validate("logins", _logins(ts=[value]))
    assert not bad
    assert good["ts"][0].isoformat() == expected


@pytest.mark.parametrize(("value", "why"), [
    ("03/04/2026", "unparseable timestamp"), ("04.03.2026", "unparseable timestamp"),
    ("March 3, 2026", "unparseable timestamp"), ("0", "timestamp out of range"),
    ("1772352000000000", "timestamp out of range"),  # microseconds, undeclared
    ("1970-01-21T00:00:00Z", "timestamp out of range"), ("2200-01-01T00:00:00Z", "timestamp out of range"),
    ("1e400", "timestamp out of range"),
])
def test_ambiguous_or_implausible_timestamps_are_quarantined(value: str, why: str) -> None:
    good, bad = validate("logins", _logins(ts=[value]))
    assert good.empty and bad[0].reason.startswith(why), bad


def test_a_declared_unit_or_layout_is_applied() -> None:
    raw = _logins(ts=["1772352000000000", "1772352000"])
    raw.attrs[TS_ATTR] = {"unit": "us", "format": None}
    good, bad = validate("logins", raw)
    assert list(good["event_id"]) == ["e0"] and good["ts"][0].isoformat() == "2026-03-01T08:00:00+00:00"
    assert "read as epoch us" in bad[0].reason  # seconds are not guessed once a unit is declared
    raw = _logins(ts=["03/04/2026 08:00", "2026-03-01T08:00:00Z"])
    raw.attrs[TS_ATTR] = {"unit": None, "format": "%d/%m/%Y %H:%M"}
    good, bad = validate("logins", raw)
    assert not bad and good["ts"].min().isoformat() == "2026-03-01T08:00:00+00:00"
    assert good["ts"].max().isoformat() == "2026-04-03T08:00:00+00:00"


def test_coordinates_asn_and_amounts_outside_sane_ranges_without_numeric_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good, bad = validate("logins", _logins(lat=["37.5", "91", "-37", "10"], lon=["127", "10", "-181", "10"],
                                               asn=["4766", "1", "1", "1e30"]))
        assert list(good["event_id"]) == ["e0"] and len(bad) == 3
        assert "'lat' out of range: 91 (expected ≥ -90 and ≤ 90)" in bad[0].reason
        tx = pd.DataFrame({"event_id": ["t1", "t2", "t3", "t4", "t5"], "account_id": ["A1"] * 5,
                           "ts": ["2026-03-01T08:00:00Z"] * 5, "kind": ["withdrawal"] * 5, "asset": ["BTC"] * 5,
                           "amount": ["1e300", "1e400", "inf", "12.5", "1e15"], "amount_usd": ["", "", "", "5e12", ""]})
        good, bad = validate("transactions", tx)
    assert list(good["event_id"]) == ["t5"]
    assert [q.reason.split(":")[0] for q in bad] == ["'amount' out of range"] * 3 + ["'amount_usd' out of range"]
