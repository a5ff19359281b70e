"""The ticket lifecycle table and the YAML ticket policy (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickets.lifecycle import EVENTS, STATES, TRANSITIONS, TicketStateError, apply, can, check_code
from tickets.routing import DEFAULT_POLICY, PolicyError, load_policy


def test_lifecycle_walks_the_documented_path() -> None:
    s = "new"
    for event, expected in (("ack", "open"), ("ask_user", "pending_user"), ("user_reply", "open"),
                            ("resolve", "resolved"), ("reopen", "open"), ("resolve", "resolved"),
                            ("close", "closed")):
        s = apply(s, event)
        assert s == expected


def test_lifecycle_refuses_illegal_moves_with_the_allowed_ones_named() -> None:
    with pytest.raises(TicketStateError, match=r"'closed' cannot take 'reopen' \(allowed: nothing\)"):
        apply("closed", "reopen")
    with pytest.raises(TicketStateError, match="allowed: close, reopen"):
        apply("resolved", "assign")
    assert not can("new", "user_reply") and can("pending_user", "attach")


def test_every_state_is_reachable_and_every_target_is_a_state() -> None:
    assert set(TRANSITIONS) == set(STATES)
    assert {t for moves in TRANSITIONS.values() for t in moves.values()} <= set(STATES)
    reached, frontier = {"new"}, ["new"]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()].values():
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(STATES)
    assert "resolve" in EVENTS


def test_resolution_codes() -> None:
    assert check_code("risk_confirmed") == "risk_confirmed"
    with pytest.raises(ValueError, match="unknown resolution code 'fp'; use one of: false_positive"):
        check_code("fp")


def test_shipped_policy_routes_by_category_tier_and_language() -> None:
    p = load_policy()
    assert p.route(category="account_security", priority="P1", tier="institutional")[0] == "security-vip"
    assert p.route(category="account_security", priority="P1", tier="regular", language="zh-TW")[0] \
        == "security"
    assert p.route(category="trading", priority="P4", language="zh-Hant-TW")[0] == "cs-zh"
    assert p.route(category="trading", priority="P4", language="zhx")[0] == "trading"  # prefix, not substring
    assert p.route(category="deposit_withdrawal", priority="P3", language="ko") == ("payments", "payments")
    assert p.route(category="unknown", priority="P3") == ("general", "default_queue")
    assert p.target("P1").first_response.total_seconds() == 15 * 60
    assert p.calendar("P1") is None and p.calendar("P3") is not None
    assert p.priority_for_text("account_security") == "P2" and p.priority_for_text("api") == "P3"


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "policy.yaml"
    f.write_text(text, encoding="utf-8")
    return f


def test_policy_errors_are_all_reported_with_positions_and_suggestions(tmp_path: Path) -> None:
    f = _write(tmp_path, """\
version: 1
queues:
  security: {notfy: staff}
  general: {}
routes:
  - match: {category: account_security, severity: huge}
    queue: security
default_queue: general
triage: {queue: general}
sla:
  targets:
    P1: {first_response: 15, resolution: 4h}
    P2: {first_response: 1h, resolution: 24h}
    P3: {first_response: 4h, resolution: 3d}
    P4: {first_response: 1d, resolution: 7d}
  calendars:
    business: {timezone: Mars/Olympus, hours: {mon: "09:00-18:00"}}
escalation:
  - after: 30m
""")
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    assert e.value.errors == [
        f"{f}:3:14: queues.security.notfy: unknown key 'notfy'. Did you mean 'notify'?",
        f"{f}:6:51: routes[0].match.severity[0]: 'huge' is not one of low, medium, high, critical",
        f"{f}:12:26: sla.targets.P1.first_response: a duration needs a unit: write '15s', '15m' or '15h' "
        "instead of 15",
        f"{f}:17:26: sla.calendars.business.timezone: unknown time zone 'Mars/Olympus'; "
        "use an IANA name like 'Asia/Seoul'",
        f"{f}:19:5: escalation[0]: an escalation step must notify, reassign, assign or raise_priority",
    ]


def test_policy_cross_references_are_checked(tmp_path: Path) -> None:
    f = _write(tmp_path, """\
queues: {security: {}, general: {}}
routes:
  - match: {category: acount_security}
    queue: securty
default_queue: general
triage: {queue: general}
text_priority: {trade: P2}
sla:
  targets:
    P1: {first_response: 15m, resolution: 4h, calendar: biz}
    P2: {first_response: 1h, resolution: 24h}
    P3: {first_response: 4h, resolution: 3d}
escalation:
  - {notify: queue, reassign: leads}
""")
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    msgs = [m.split(": ", 1)[1] for m in e.value.errors]
    assert "routes[0].queue: unknown queue 'securty'. Did you mean 'security'?" in msgs
    assert ("routes[0].match.category: unknown category 'acount_security'. "
            "Did you mean 'account_security'?") in msgs
    assert "text_priority.trade: unknown category 'trade'. Did you mean 'trading'?" in msgs
    assert "sla.targets: a target is needed for every priority; missing P4" in msgs
    assert "sla.targets.P1.calendar: unknown calendar 'biz'" in msgs
    assert "escalation[0].reassign: unknown queue 'leads'" in msgs
    assert e.value.errors[0].startswith(f"{f}:")


def test_policy_file_problems_never_traceback(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match=r"policy.yaml:3:1: invalid YAML: expected the node content"):
        load_policy(_write(tmp_path, "queues:\n  - a: [\n"))
    with pytest.raises(PolicyError, match="the top level must be a mapping"):
        load_policy(_write(tmp_path, "- 1\n"))
    with pytest.raises(PolicyError, match=r"hours: .*'9-5' is not a span like '09:00-18:00'"):
        load_policy(_write(tmp_path, DEFAULT_POLICY.read_text().replace('"08:00-20:00"', '"9-5"', 1)))
