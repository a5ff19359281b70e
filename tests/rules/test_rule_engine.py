"""Matching findings to rules: conditions, segments, schedules, shadow mode, and inhibition."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import Finding
from rules.engine import Decision, Recent, evaluate, split_inhibited
from rules.loader import RuleSet, load_rules

NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)  # a Monday

RULES = textwrap.dedent(
    """\
    rules:
      - id: country-high
        detector: new_location
        when: finding.kind == "country" && account.tier != "institutional"
        severity: high
        inhibit: {window: 1h}
        throttle: {key: account_id+kind, per: 1h}
        group: {window: 10m}
      - id: country-shadow
        mode: shadow
        detector: new_location
        when: finding.evidence.country == "KP"
        severity: critical
        inhibit: {window: 1d}
      - id: city-low
        detector: new_location
        when: finding.kind == "city"
        severity: low
      - id: night-owl
        detector: new_location
        severity: medium
        segments: {locales: [ko], min_account_age_days: 30}
        schedule:
          timezone: account
          active: [{days: [mon, tue, wed, thu, fri], start: "22:00", end: "06:00"}]
      - id: off
        enabled: false
        detector: new_location
        severity: critical
      - id: profile-aware
        detector: new_location
        when: profile.n > 10
        severity: low
    """
)


def ruleset(tmp_path: Path, text: str = RULES) -> RuleSet:
    f = tmp_path / "r.yaml"
    f.write_text(text, encoding="utf-8")
    return load_rules(f)


def finding(
    account: str = "a1",
    kind: str = "country",
    ts: datetime = NOW,
    country: str = "JP",
    key: str | None = None,
    family: str = "login",
) -> Finding:
    return Finding(
        "new_location",
        account,
        ts,
        key or f"{account}:{ts.isoformat()}:{kind}",
        kind,
        0.7,
        (f"e-{account}-{ts.timestamp():.0f}",),
        {"country": country},
        family,
    )


ACCOUNTS = {
    "a1": {
        "account_id": "a1",
        "tier": "retail",
        "locale": "ko-KR",
        "timezone": "Asia/Seoul",
        "created_at": NOW - timedelta(days=100),
    },
    "inst": {"account_id": "inst", "tier": "institutional", "locale": "en"},
    "young": {"account_id": "young", "tier": "retail", "locale": "ko", "created_at": NOW - timedelta(days=3)},
}


def ids(decisions: list[Decision]) -> list[str]:
    return [d.rule.id for d in decisions]


def test_conditions_segments_and_enabled(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    assert ids(evaluate(rs, [finding("a1")], ACCOUNTS, now=NOW)) == ["country-high"]
    assert ids(evaluate(rs, [finding("inst")], ACCOUNTS, now=NOW)) == []
    assert ids(evaluate(rs, [finding("a1", kind="city")], ACCOUNTS, now=NOW)) == ["city-low"]
    assert ids(evaluate(rs, [finding("a1", country="KP")], ACCOUNTS, now=NOW)) == [
        "country-high",
        "country-shadow",
    ]


def test_schedule_uses_the_findings_time_in_the_accounts_zone(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    # 13:30 UTC Monday = 22:30 Monday in Seoul: inside the window
    late = finding("a1", kind="other", ts=datetime(2024, 6, 3, 13, 30, tzinfo=UTC))
    # 20:30 UTC Friday = 05:30 Saturday in Seoul: the window that started Friday 22:00 still runs
    sat = finding("a1", kind="other", ts=datetime(2024, 6, 7, 20, 30, tzinfo=UTC))
    # 21:30 UTC Saturday = 06:30 Sunday: outside
    sun = finding("a1", kind="other", ts=datetime(2024, 6, 8, 21, 30, tzinfo=UTC))
    noon = finding("a1", kind="other", ts=datetime(2024, 6, 3, 3, 0, tzinfo=UTC))
    got = [ids(evaluate(rs, [f], ACCOUNTS, now=NOW)) for f in (late, sat, sun, noon)]
    assert got == [["night-owl"], ["night-owl"], [], []]
    # the young account is outside the segment (min_account_age_days: 30)
    assert ids(evaluate(rs, [finding("young", kind="other", ts=late.ts)], ACCOUNTS, now=NOW)) == []


def test_profile_is_visible_and_runtime_errors_are_reported(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    profiles = {"a1": {"new_location": {"n": 11}}}
    got = evaluate(rs, [finding("a1", kind="other")], ACCOUNTS, now=NOW, profiles=profiles)
    assert ids(got) == ["profile-aware"]
    errors: list[tuple[str, str]] = []
    f = Finding("new_location", "a1", NOW, "k", "country", 0.7, ("e",), {}, "login")  # no evidence.country
    got = evaluate(rs, [f], ACCOUNTS, now=NOW, on_error=lambda rid, _f, e: errors.append((rid, e)))
    assert ids(got) == ["country-high"]
    assert [r for r, _ in errors] == ["country-shadow", "profile-aware"]


def test_decision_keys_are_deterministic(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    (d,) = evaluate(rs, [finding("a1")], ACCOUNTS, now=NOW)
    (again,) = evaluate(rs, [finding("a1")], ACCOUNTS, now=NOW + timedelta(days=3))
    assert d.alert_id == again.alert_id and d.alert_id.startswith("a_")
    assert d.throttle_key() == "country-high|a1|new_location:country"
    assert d.group_key() == "a1" and d.severity == "high" and d.mode == "live" and not d.shadow


def test_a_high_alert_mutes_later_lower_ones_on_the_same_account(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    t0 = NOW
    high = evaluate(rs, [finding("a1", ts=t0)], ACCOUNTS, now=NOW)
    low_later = evaluate(rs, [finding("a1", kind="city", ts=t0 + timedelta(minutes=30))], ACCOUNTS, now=NOW)
    low_before = evaluate(rs, [finding("a1", kind="city", ts=t0 - timedelta(minutes=1))], ACCOUNTS, now=NOW)
    low_after_window = evaluate(
        rs, [finding("a1", kind="city", ts=t0 + timedelta(hours=2))], ACCOUNTS, now=NOW
    )
    other = evaluate(rs, [finding("b2", kind="city", ts=t0 + timedelta(minutes=5))], {}, now=NOW)
    batch = low_later + high + low_before + low_after_window + other
    kept, muted = split_inhibited(batch)
    assert [d.rule.id for d, _ in muted] == ["city-low"] and muted[0][0] is low_later[0]
    assert muted[0][1] == high[0].alert_id
    assert ids(low_after_window) == ["city-low", "night-owl"]  # 23:00 in Seoul: the night rule too
    assert kept == [*high, *low_before, *low_after_window, *other]  # input order kept


def test_shadow_rules_never_mute_and_recent_alerts_do(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    shadow = evaluate(rs, [finding("a1", country="KP")], ACCOUNTS, now=NOW)  # country-high + country-shadow
    low = evaluate(rs, [finding("a1", kind="city", ts=NOW + timedelta(minutes=5))], ACCOUNTS, now=NOW)
    kept, muted = split_inhibited([shadow[1], *low])
    assert muted == [] and len(kept) == 2
    stored = {
        "id": "a_prev",
        "rule_id": "country-high",
        "account_id": "a1",
        "severity": "high",
        "ts": (NOW - timedelta(minutes=10)).replace(tzinfo=None),
        "mode": "live",
        "detector": "new_location",
    }
    recent = Recent.from_alert(stored, rs)
    assert recent is not None and recent.family == "login" and recent.ts.tzinfo is not None
    kept, muted = split_inhibited(low, [recent])
    assert kept == [] and muted == [(low[0], "a_prev")]
    assert Recent.from_alert({**stored, "mode": "shadow"}, rs) is None
    assert Recent.from_alert({**stored, "rule_id": "city-low"}, rs) is None  # no inhibit on that rule


@settings(max_examples=80, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["country", "city"]), st.integers(0, 300)),
        min_size=1,
        max_size=12,
    ),
    cut=st.integers(0, 300),
)
def test_inhibition_does_not_depend_on_how_the_stream_is_cut_into_batches(
    events: list[tuple[str, str, int]], cut: int
) -> None:
    rs = _RS
    unique = {(a, k, m): finding(a, kind=k, ts=NOW + timedelta(minutes=m)) for a, k, m in events}
    findings = sorted(unique.values(), key=lambda f: (f.ts, f.key))
    decisions = evaluate(rs, findings, {}, now=NOW)
    whole_kept, _ = split_inhibited(decisions)
    first = [d for d in decisions if d.finding.ts < NOW + timedelta(minutes=cut)]
    second = [d for d in decisions if d.finding.ts >= NOW + timedelta(minutes=cut)]
    k1, _ = split_inhibited(first)
    k2, _ = split_inhibited(second, [Recent.from_decision(d) for d in k1 if d.rule.inhibit])
    assert {d.alert_id for d in whole_kept} == {d.alert_id for d in k1 + k2}


def _build() -> RuleSet:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return ruleset(Path(d))


_RS = _build()


def test_group_scope_family_keys_the_window_by_account_and_family(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, RULES.replace("group: {window: 10m}", "group: {window: 10m, scope: family}"))
    (d,) = evaluate(rs, [finding("a1", family="transfer")], ACCOUNTS, now=NOW)
    assert d.rule.group is not None and d.rule.group.scope == "family"
    assert d.group_key() == "a1|transfer"
    (d2,) = evaluate(rs, [finding("a1", family="login")], ACCOUNTS, now=NOW)
    assert d2.group_key() == "a1|login"
