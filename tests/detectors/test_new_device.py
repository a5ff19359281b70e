from __future__ import annotations

from detectors.new_device import NewAsn, NewDevice, NewSubnet
from tests.detectors.login_frames import CHROME, FIREFOX, HOME, history, ids, login, scan, scan_in_parts


def test_new_device_full_and_partial_match() -> None:
    rows = [
        *history(6),
        login("same-browser", 200, **{**HOME, "device_id": "dev-2", "user_agent": CHROME.replace("120", "121")}),
        login("other-browser", 220, **{**HOME, "device_id": "dev-3", "user_agent": FIREFOX}),
    ]
    res = scan(NewDevice(), rows)
    by_id = {f.event_ids[0]: f for f in res.findings}
    assert set(by_id) == {"same-browser", "other-browser"}
    partial, full = by_id["same-browser"], by_id["other-browser"]
    assert partial.evidence["partial_match"] is True and partial.evidence["browser"] == "Chrome"
    assert partial.score == 0.3 and full.score == 0.5
    assert full.evidence["partial_match"] is False and full.evidence["browser"] == "Firefox"
    assert full.evidence["known"] == ["dev-1", "dev-2"] and full.evidence["value"] == "dev-3"
    assert res.profiles["alice"]["seen"]["browser"].keys() == {"Chrome", "Firefox"}
    # what a message shows (notifiers/render.py reads evidence "device" before the raw string)
    assert partial.evidence["device"].startswith("Chrome 121 on ")
    assert full.evidence["device"].startswith("Firefox ")


def test_learning_period_and_missing_user_agent() -> None:
    rows = [*history(3), login("x", 100, **{**HOME, "device_id": "dev-9"})]
    assert scan(NewDevice(), rows).findings == []  # 3 earlier logins < min_history_logins 5
    rows = [*history(5), login("x", 200, **{**HOME, "device_id": "dev-9"})]
    res = scan(NewDevice(), rows, drop=["user_agent"])
    assert ids(res.findings) == [("x",)] and res.findings[0].evidence["partial_match"] is False
    assert any("'user_agent' absent" in s.reason for s in res.skips)
    res = scan(NewDevice(), rows, drop=["device_id"])
    assert res.findings == [] and "'device_id' absent" in res.skips[0].reason


def test_new_subnet_uses_the_24() -> None:
    rows = [
        *history(6),
        login("same24", 200, **{**HOME, "ip": "121.134.10.77"}),
        login("new24", 210, **{**HOME, "ip": "121.134.11.5"}),
        login("v6", 220, **{**HOME, "ip": "2001:db8:aa:1::1"}),
    ]
    res = scan(NewSubnet(), rows)
    assert ids(res.findings) == [("new24",), ("v6",)]
    ev = {f.event_ids[0]: f.evidence for f in res.findings}
    assert ev["new24"]["value"] == "121.134.11.0/24" and ev["new24"]["known"] == ["121.134.10.0/24"]
    assert ev["v6"]["value"] == "2001:db8:aa::/48"


def test_new_asn_and_the_offline_organisation_fallback() -> None:
    rows = [*history(6), login("kt", 200, **HOME), login("sk", 210, **{**HOME, "asn": 9318})]
    res = scan(NewAsn(), rows)
    assert ids(res.findings) == [("sk",)] and res.findings[0].evidence["value"] == "AS9318"
    # no AS number, only the organisation name from geo enrichment
    org_rows = [{**r, "asn": None, "asn_org": "Korea Telecom"} for r in history(6)]
    org_rows.append(login("org", 200, **{**HOME, "asn": None, "asn_org": "SK Broadband"}))
    res = scan(NewAsn(), org_rows)
    assert ids(res.findings) == [("org",)] and res.findings[0].evidence["value"] == "org:SK BROADBAND"


def test_new_asn_says_whether_it_is_an_anonymiser_or_a_host() -> None:
    rows = [
        *history(6),
        login("vpn", 200, **{**HOME, "asn": 9009, "is_anonymous_ip": False}),
        login("tor", 210, **{**HOME, "asn": 64500, "is_anonymous_ip": True}),
        login("isp", 220, **{**HOME, "asn": 9318, "is_anonymous_ip": False}),
    ]
    ev = {f.event_ids[0]: f.evidence for f in scan(NewAsn(), rows).findings}
    assert (ev["vpn"]["hosting"], ev["vpn"]["is_anonymous_ip"]) == (True, False)
    assert (ev["tor"]["hosting"], ev["tor"]["is_anonymous_ip"]) == (False, True)
    assert (ev["isp"]["hosting"], ev["isp"]["is_anonymous_ip"]) == (False, False)
    assert scan(NewAsn(hosting_asns=[]), rows).findings[0].evidence["hosting"] is False


def test_batches_equal_one_scan() -> None:
    rows = [
        *history(8),
        login("d", 300, **{**HOME, "device_id": "dev-2", "ip": "8.8.4.4", "asn": 15169}),
        *history(8, account="bob"),
        login("e", 301, "bob", **{**HOME, "device_id": "dev-7"}),
    ]
    for det in (NewDevice(), NewSubnet(), NewAsn()):
        one = scan(det, rows).findings
        assert one, det.name
        assert sorted(f.finding_id for f in scan_in_parts(det, rows, 6)) == sorted(f.finding_id for f in one)


# -- issue 13 point 6: devices described for people ------------------------------------------------
def test_devices_are_described_by_their_parsed_user_agent() -> None:
    from detectors.useragent import describe

    chrome = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.2 Mobile/15E148 Safari/604.1"
    )
    reduced = (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 "
        "Mobile Safari/537.36"
    )
    assert describe(chrome) == "Chrome 131 on Windows"
    assert describe(iphone) == "Mobile Safari 17 on iOS (iPhone)"
    assert describe(reduced) == "Chrome Mobile 121 on Android"  # Chrome's reduced UA names no model
    assert describe("ExApp/3.4.1 (iPhone; iOS 17.2)") == "ExApp 3 on iOS (iPhone)"  # a native app
    assert describe("") is None and describe(None) is None and describe("garbage") is None
