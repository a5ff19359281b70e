"""Issue 13 point 5: logins that carry only an IP address reach the detectors enriched.

A login from Brazil to an account that always signed in from Korea, with nothing but ``ip`` in
the file, must raise the new-country alert, and the report must not say the country is absent.
The IP database is the offline one that ships inside the ``geoip2fast`` wheel (the default).
"""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from vigil.cli import main

KOREA, BRAZIL = "211.234.10.10", "200.147.67.142"  # LG DACOM (KR), Universo Online (BR)


def _write(path: Path) -> Path:
    path.mkdir(parents=True)
    rows = [("A1", f"A1-l{i}", f"2026-01-0{1 + i}T09:00:00Z", KOREA) for i in range(6)]
    rows.append(("A1", "A1-brazil", "2026-01-08T03:00:00Z", BRAZIL))
    with (path / "logins.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["account_id", "event_id", "ts", "success", "ip"])
        for acct, eid, ts, ip in rows:
            w.writerow([acct, eid, ts, "true", ip])
    with (path / "accounts.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["account_id", "locale"], ["A1", "ko"]])
    return path


def test_an_ip_only_login_from_another_country_is_found(tmp_path: Path) -> None:
    data = _write(tmp_path / "data")
    out = tmp_path / "alerts.csv"
    r = CliRunner().invoke(main, ["backtest", "--data", str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "column 'country' absent" not in r.output
    alerts = list(csv.DictReader(out.open()))
    hits = [a for a in alerts if a["rule_id"] == "login-new-country"]
    assert [a["event_ids"] for a in hits] == ["A1-brazil"], alerts


def test_enrich_reports_the_absent_columns_it_filled() -> None:
    import pandas as pd

    from detectors.geo import default_resolver, enrich, still_absent

    df = pd.DataFrame({"event_id": ["e1", "e2"], "ip": [BRAZIL, "10.0.0.1"]})
    got = enrich(df, default_resolver(), absent=("country", "city", "lat", "lon", "asn", "device_id"))
    assert got.frame["country"].tolist()[0] == "BR"
    assert {"country", "lat", "lon"} <= got.filled  # the capital's point, precision "country"
    assert "device_id" not in got.filled and "city" not in got.filled  # nothing to fill it from
    assert still_absent({"country", "device_id"}, got) == {"device_id"}
    nothing = enrich(df.iloc[1:], default_resolver(), absent=("country",))
    assert nothing.filled == frozenset()  # a private address places nothing: still absent
