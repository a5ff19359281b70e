from __future__ import annotations

import math

import pytest

from detectors.login_risk import LoginRisk
from tests.detectors.login_frames import CHROME, FIREFOX, HOME, history, ids, login, scan, scan_in_parts

ALL = {"min_log10_score": 0.0}


def factors(det: LoginRisk, extra: dict, n: int = 20, **kw: object) -> dict:
    rows = [*history(n), login("x", n * 24, **{**HOME, **extra})]
    res = scan(det, rows)
    f = {x.event_ids[0]: x for x in res.findings}["x"]
    return {k: v["factor"] for k, v in f.evidence["factors"].items()} | {
        "_log10": f.evidence["log10_score"],
        "_text": f.evidence["text"],
    }


def test_a_familiar_login_scores_one() -> None:
    got = factors(LoginRisk(**ALL), {})
    assert got["ip"] == 1.0 and got["ua"] == 1.0 and got["device"] == 1.0 and got["_log10"] == 0.0


def test_hierarchical_back_off_of_the_ip() -> None:
    # 20 earlier logins, all from one IP / ASN / country (Freeman weights 0.6 / 0.3 / 0.1)
    assert factors(LoginRisk(**ALL), {"ip": "121.134.99.1"})["ip"] == pytest.approx(1 / 0.4, abs=1e-3)
    assert factors(LoginRisk(**ALL), {"ip": "1.2.3.4", "asn": 9318})["ip"] == pytest.approx(10.0, abs=1e-3)
    # nothing similar: the smoothed minimum w0 / (n + unseen), unseen = 1 + 1 ASN + 1 country
    got = factors(LoginRisk(**ALL), {"ip": "1.2.3.4", "asn": 36873, "country": "NG"})
    assert got["ip"] == pytest.approx((20 + 3) / 0.6, abs=1e-2)


def test_device_and_user_agent_factors_and_text() -> None:
    got = factors(LoginRisk(**ALL), {"device_id": "dev-new"})
    assert got["device"] == pytest.approx(21.0) and got["_log10"] == pytest.approx(math.log10(21), abs=1e-3)
    assert got["_text"] == "device new (×21)"
    got = factors(LoginRisk(**ALL), {"user_agent": FIREFOX})
    # new string, browser version and OS version; the device type (desktop, weight 0.005) is known
    assert got["ua"] > 40 and "user agent new, device type desktop known" in got["_text"]


def test_threshold_and_learning_period() -> None:
    attacker = {"ip": "1.2.3.4", "asn": 36873, "country": "NG", "device_id": "evil", "user_agent": FIREFOX}
    rows = [*history(20), login("x", 20 * 24, **{**HOME, **attacker}), login("y", 20 * 24 + 1, **HOME)]
    res = scan(LoginRisk(), rows)
    assert ids(res.findings) == [("x",)]
    f = res.findings[0]
    assert f.evidence["log10_score"] > 4 and f.score == 1.0 and f.evidence["history_logins"] == 20
    assert f.evidence["top_feature"] in ("ip", "ua", "device")
    # the same login after only 3 earlier ones is still in the learning period
    assert scan(LoginRisk(), [*history(3), login("x", 100, **{**HOME, **attacker})]).findings == []


def test_a_device_used_for_48_hours_is_trusted() -> None:
    rows = [
        *history(20),
        login("p1", 20 * 24, **{**HOME, "device_id": "new-phone"}),
        login("p2", 20 * 24 + 72, **{**HOME, "device_id": "new-phone"}),
    ]
    trusted = {f.event_ids[0]: f for f in scan(LoginRisk(**ALL), rows).findings}
    # second use: 1 of 22 logins, but first used 72 h ago -> as likely as any of its 2 devices
    assert trusted["p2"].evidence["factors"]["device"]["factor"] == pytest.approx(2.0)
    plain = {f.event_ids[0]: f for f in scan(LoginRisk(trust_after_hours=0, **ALL), rows).findings}
    assert plain["p2"].evidence["factors"]["device"]["factor"] == pytest.approx(21.0)


def test_a_device_used_twice_is_trusted() -> None:
    rows = [
        *history(20),
        *(login(f"p{i}", 20 * 24 + i, **{**HOME, "device_id": "new-phone"}) for i in range(3)),
    ]
    got = {f.event_ids[0]: f.evidence["factors"]["device"]["factor"] for f in scan(LoginRisk(**ALL), rows).findings}
    # 1st use: never seen (x21); 2nd: 1 of 21 (x21); 3rd: used twice already -> 1 of its 2 devices (x2)
    assert {k: got[k] for k in ("p0", "p1", "p2")} == pytest.approx({"p0": 21.0, "p1": 21.0, "p2": 2.0})
    off = {
        f.event_ids[0]: f.evidence["factors"]["device"]["factor"]
        for f in scan(LoginRisk(trust_after_uses=0, **ALL), rows).findings
    }
    assert off["p2"] == pytest.approx(22 / 2)


def test_missing_columns_are_named() -> None:
    res = scan(LoginRisk(**ALL), [*history(6), login("x", 200, **HOME)], drop=["asn", "device_id"])
    reasons = " | ".join(s.reason for s in res.skips)
    assert "'asn' absent" in reasons and "'device_id' absent" in reasons
    assert "device" not in res.findings[-1].evidence["factors"]


def test_batches_equal_one_scan() -> None:
    rows = [
        *history(12),
        login("x", 300, **{**HOME, "ip": "1.2.3.4", "asn": 9318, "device_id": "d9"}),
        *history(12, account="bob"),
        login("y", 301, "bob", **{**HOME, "user_agent": FIREFOX}),
    ]
    det = LoginRisk(min_log10_score=1.0)
    one = scan(det, rows).findings
    assert len(one) == 2
    parts = scan_in_parts(det, rows, 7)
    assert sorted((f.finding_id, f.evidence["log10_score"]) for f in parts) == sorted(
        (f.finding_id, f.evidence["log10_score"]) for f in one
    )


# -- the client factor (user agent x device) weighed by the network it comes from -------------------------
PHONE_UA = "ExApp/3.0.0 (iPhone; iOS 17.0; Scale/3.00)"
OTHER_HOME_IP = {"ip": "121.134.77.9", "asn": 4766}  # a new IP of the account's own provider
HOSTING_KR = {"ip": "45.32.1.9", "asn": 20473, "country": "KR"}  # a hosting network, same country


def scored(det: LoginRisk, extra: dict, n: int = 40) -> dict:
    rows = [*history(n), login("x", n * 24, **{**HOME, **extra})]
    f = {x.event_ids[0]: x for x in scan(det, rows).findings}["x"]
    return dict(f.evidence)


def test_a_cookie_cleared_browser_on_the_familiar_ip_scores_low() -> None:
    # same IP, same user-agent string, a fresh device id: 1 of 41 -> x41 on its own
    got = scored(LoginRisk(**ALL), {"device_id": "dev-1-cleared"})
    assert got["factors"]["device"]["factor"] == pytest.approx(41.0)
    assert got["client_gate"] == "known_ip" and got["client_factor_used"] == pytest.approx(30.0)
    assert got["log10_score"] == pytest.approx(math.log10(30), abs=1e-3)
    assert got["log10_score"] < LoginRisk().p["min_log10_score"]
    assert "IP known" in got["text"]
    off = scored(LoginRisk(client_cap_known_ip=0, **ALL), {"device_id": "dev-1-cleared"})
    assert off["client_gate"] is None and off["log10_score"] == pytest.approx(math.log10(41), abs=1e-3)


def test_a_new_phone_on_the_familiar_network_is_capped() -> None:
    # a new IP of the usual provider, a new device with a new user agent
    got = scored(LoginRisk(**ALL), {**OTHER_HOME_IP, "device_id": "new-phone", "user_agent": PHONE_UA})
    assert got["client_factor"] > 1000 and got["client_gate"] == "known_network"
    ip = got["factors"]["ip"]["factor"]
    assert ip == pytest.approx(1 / 0.4, abs=1e-3)  # IP new, network and country known
    assert got["log10_score"] == pytest.approx(math.log10(ip * 10), abs=1e-3)
    new_phone = {**HOME, **OTHER_HOME_IP, "device_id": "new-phone", "user_agent": PHONE_UA}
    assert not scan(LoginRisk(), [*history(40), login("x", 40 * 24, **new_phone)]).findings


def test_a_copied_user_agent_on_a_new_device_and_ip_is_not_capped() -> None:
    # a new device id presenting the exact user agent of the account's browser, from a new IP of its
    # provider: not a cookie loss (that happens where the browser lives), so counted in full
    got = scored(LoginRisk(**ALL), {**OTHER_HOME_IP, "device_id": "clone"})
    assert got["client_gate"] is None
    assert got["client_factor_used"] == got["client_factor"] == pytest.approx(41.0)


def test_a_replayed_device_from_an_unfamiliar_network_scores_high() -> None:
    # the account's own device id and user agent, from a hosting network it never used
    got = scored(LoginRisk(**ALL), HOSTING_KR)
    assert got["factors"]["device"]["factor"] == 1.0 and got["factors"]["ua"]["factor"] == 1.0
    assert got["client_gate"] == "new_network" and got["client_factor_used"] == pytest.approx(30.0)
    ip = got["factors"]["ip"]["factor"]
    assert ip == pytest.approx(1 / 0.1, abs=1e-3)  # only the country is known
    assert got["log10_score"] == pytest.approx(math.log10(ip * 30), abs=1e-3)
    assert got["log10_score"] >= LoginRisk().p["min_log10_score"]
    assert "network never used" in got["text"]
    off = scored(LoginRisk(new_network_floor=0, **ALL), HOSTING_KR)
    assert off["client_gate"] is None and off["log10_score"] == pytest.approx(1.0, abs=1e-3)


def test_a_new_device_from_an_unfamiliar_network_is_counted_in_full() -> None:
    got = scored(LoginRisk(**ALL), {**HOSTING_KR, "device_id": "atk", "user_agent": FIREFOX})
    assert got["client_gate"] is None and got["client_factor"] > 30
    assert got["log10_score"] == pytest.approx(
        math.log10(got["factors"]["ip"]["factor"] * got["client_factor"]), abs=1e-2
    )


def test_the_account_s_browser_and_os_versions_on_a_new_device_count_as_a_copy() -> None:
    # the same Chrome 120 on Windows 10, a different build string: the account's own software
    chrome_build = CHROME.replace("Chrome/120.0.0.0", "Chrome/120.0.6099.71")
    got = scored(LoginRisk(**ALL), {**OTHER_HOME_IP, "device_id": "clone", "user_agent": chrome_build})
    assert got["factors"]["ua"]["factor"] > 1 and got["client_gate"] is None
    # Chrome 121 is new software (an update, or another browser): capped on the known network
    chrome_121 = CHROME.replace("Chrome/120.0.0.0", "Chrome/121.0.0.0")
    got = scored(LoginRisk(**ALL), {**OTHER_HOME_IP, "device_id": "clone", "user_agent": chrome_121})
    assert got["client_gate"] == "known_network" and got["client_factor_used"] == pytest.approx(10.0)


def test_a_new_ip_counts_more_on_a_network_where_the_account_rarely_shows_new_ips() -> None:
    # 40 logins from one home IP (one new IP there: the first login): a new IP of the same provider
    # is rare for this account -- (1 + 1) / (40 + 2), x21, capped at x3
    det = LoginRisk(ip_novelty_cap=3, **ALL)
    got = scored(det, OTHER_HOME_IP)
    assert got["ip_novelty"] == {"factor": 3.0, "new_ips_on_network": 1, "logins_on_network": 40}
    assert got["factors"]["ip"]["factor"] == pytest.approx(3 / 0.4, abs=1e-3)
    assert "new IPs rare on that network: 1 in 40 logins" in got["text"]
    # a carrier's NAT: every earlier login on that network came from a new IP -> no extra weight
    rows = [
        *(login(f"h{i}", i * 24, **{**HOME, "ip": f"10.0.{i}.1", "asn": 4766}) for i in range(40)),
        login("x", 40 * 24, **{**HOME, **OTHER_HOME_IP}),
    ]
    f = {x.event_ids[0]: x for x in scan(det, rows).findings}["x"]
    assert f.evidence["ip_novelty"]["new_ips_on_network"] == 40
    assert f.evidence["ip_novelty"]["factor"] == pytest.approx(42 / 41, abs=1e-3)
    # off by default: Freeman's back-off alone
    assert scored(LoginRisk(**ALL), OTHER_HOME_IP)["ip_novelty"] is None


def test_the_ip_novelty_count_survives_batches() -> None:
    rows = [
        *history(30),
        *(login(f"n{i}", 30 * 24 + i * 24, **{**HOME, "ip": f"121.134.1.{i}"}) for i in range(4)),
        login("x", 40 * 24, **{**HOME, **OTHER_HOME_IP}),
    ]
    det = LoginRisk(ip_novelty_cap=10, **ALL)
    one = {f.event_ids[0]: f.evidence["ip_novelty"] for f in scan(det, rows).findings}
    parts = {f.event_ids[0]: f.evidence["ip_novelty"] for f in scan_in_parts(det, rows, 5)}
    # 5 new IPs (the home IP and 4 others) in 34 logins: (5 + 1) / (34 + 2) -> x6
    want = {"factor": pytest.approx(6.0), "new_ips_on_network": 5, "logins_on_network": 34}
    assert one["x"] == want and parts["x"] == want
