"""The loader on valid rule sets: the shipped pack, every schema feature, parameters, hashes, positions."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import DETECTORS
from detectors.base import Param
from detectors.new_location import NewLocation
from rules.errors import scalar_position
from rules.loader import DEFAULT_PACK, RuleLoadError, content_hash, load_rules
from rules.schema import FreezeAction, TicketAction
from vigil.bootstrap import rule_inputs

NOW = datetime(2024, 6, 1, tzinfo=UTC)

FULL = textwrap.dedent(
    """\
    version: 1
    detectors:
      new_location:
        window_days: 60
        overrides:
          - segment: {tiers: [vip]}
            window_days: 30
          - segment: {max_account_age_days: 7}
            min_history_logins: 0
    rules:
      - id: login-new-country
        description: every feature at once
        owner: security-team
        enabled: true
        mode: shadow
        detector: new_location
        when: finding.kind == "country" && account.tier != "institutional"
        severity: high
        notify:
          channels: [push, sms, email]
          template: new_location
          confirm: true
          expires: 45m
          strategy: fallback
        on_match: [{webhook: {name: soc}}]
        on_denied:
          - freeze
          - ticket: {category: account_security, priority: P1}
        on_confirmed: [{escalate: {to: fraud-desk, reminder: false}}]
        on_expired:
          - type: ticket
            category: account_security
            priority: P2
        throttle: {key: account_id+kind, per: 2h, max: 3}
        group: {window: 10m}
        inhibit: true
        segments: {exclude_tiers: [institutional], locales: [zh, ko], min_account_age_days: 1}
        schedule:
          timezone: account
          active:
            - {days: [mon, tue, wed, thu, fri], start: "22:00", end: "06:00"}
        suppressible: false
    """
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_default_pack_loads_with_the_real_registries() -> None:
    rs = load_rules(DEFAULT_PACK)
    assert rs.rules, "the default pack has rules"
    for cr in rs.rules:
        assert all(d in DETECTORS for d in cr.rule.detectors)
        assert len(cr.rule_hash) == 16
    assert set(rs.detectors) == set(DETECTORS)


def test_every_feature_parses_into_typed_values(tmp_path: Path) -> None:
    rs = load_rules(write(tmp_path, "full.yaml", FULL))
    (cr,) = rs.rules
    r = cr.rule
    assert r.shadow and r.severity == "high" and r.suppressible is False
    assert (
        r.notify is not None and r.notify.expires == timedelta(minutes=45) and r.notify.strategy == "fallback"
    )
    assert isinstance(r.on_denied[0], FreezeAction) and isinstance(r.on_denied[1], TicketAction)
    assert r.on_expired[0] == TicketAction(category="account_security", priority="P2")
    assert r.throttle is not None and (r.throttle.per, r.throttle.max) == (timedelta(hours=2), 3)
    assert r.inhibit is not None and r.inhibit.window == timedelta(hours=1)
    assert r.schedule is not None and r.schedule.active[0].end is not None
    assert cr.condition is not None and cr.condition.fields == ["finding.kind", "account.tier"]
    assert cr.source.endswith("full.yaml:11")


def test_parameter_overrides_pick_the_first_matching_segment(tmp_path: Path) -> None:
    rs = load_rules(write(tmp_path, "full.yaml", FULL))
    conf = rs.configs["new_location"]
    assert conf.base.p["window_days"] == 60
    assert conf.sources["window_days"].endswith("full.yaml:4")
    vip = conf.for_account({"tier": "vip", "age_days": 3})
    young = conf.for_account({"tier": "retail", "age_days": 3})
    old = conf.for_account({"tier": "retail", "age_days": 300})
    assert vip.p["window_days"] == 30 and vip.p["min_history_logins"] == 3
    assert young.p["window_days"] == 60 and young.p["min_history_logins"] == 0
    assert old is conf.base
    directory = {
        "a": {"tier": "vip"},
        "b": {"created_at": NOW - timedelta(days=2)},
        "c": {"created_at": NOW - timedelta(days=400)},
    }
    parts = conf.partition(["a", "b", "c", "d"], directory, NOW)
    assert parts[0][0] is conf.base and sorted(parts[0][1]) == ["c", "d"]  # unknown age: no age override
    assert sorted(ids for _, group in parts[1:] for ids in group) == ["a", "b"]


def test_errors_of_every_file_come_in_one_run(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "detectors:\n  new_location:\n    window_days: 30\nrules:\n"
        "  - {id: same-id, detector: new_location, severity: hihg}\n",
    )
    write(
        tmp_path,
        "sub/b.yaml",
        "detectors:\n  new_location:\n    window_days: 45\nrules:\n"
        "  - {id: same-id, detector: new_locaton, severity: high}\n",
    )
    write(tmp_path, "c.yaml", "rules:\n\t- broken\n")
    write(tmp_path, ".hidden/ignored.yaml", "this: [is not read\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(tmp_path)
    text = [str(e).replace(str(tmp_path) + "/", "") for e in info.value.errors]
    assert text == [
        "a.yaml:5:53: rule \"same-id\": severity: 'hihg' is not one of low, medium, high, critical. "
        "Did you mean 'high'?",
        "c.yaml:2:1: a tab character in the indentation: YAML needs spaces",
        "sub/b.yaml:3:5: detectors.new_location.window_days: already set at a.yaml:3; "
        "set a parameter in one place only",
        "sub/b.yaml:5:10: rule \"same-id\": id: duplicate rule id; 'same-id' is already defined at a.yaml:5",
        "sub/b.yaml:5:29: rule \"same-id\": detector: unknown detector 'new_locaton'. "
        "Did you mean 'new_location'?",
    ]


def test_a_missing_path_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError, match="no such file or directory"):
        load_rules(tmp_path / "nope")
    with pytest.raises(RuleLoadError, match=r"no \.yaml rule files"):
        load_rules(tmp_path)
    write(tmp_path, "latin1.yaml", "")
    (tmp_path / "latin1.yaml").write_bytes("rules: []\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(RuleLoadError, match="not UTF-8"):
        load_rules(tmp_path)


def test_warnings_name_detectors_that_alert_nobody(tmp_path: Path) -> None:
    rs = load_rules(
        write(tmp_path, "one.yaml", "rules:\n  - {id: one, detector: new_location, severity: low}\n")
    )
    warned = {w.message.split("'")[1] for w in rs.warnings if "no enabled rule" in w.message}
    assert warned == set(DETECTORS) - {"new_location"}
    assert all(str(w).startswith(str(tmp_path)) and ":0:" not in str(w) for w in rs.warnings)


def test_templates_unknown_to_the_notifiers_are_not_guessed(tmp_path: Path) -> None:
    text = (
        "rules:\n  - id: r1\n    detector: new_location\n    severity: low\n"
        "    notify: {channels: [push], template: zz_x}\n"
    )
    f = write(tmp_path, "t.yaml", text)
    with pytest.raises(RuleLoadError, match="template 'zz_x' does not exist"):
        load_rules(f, **rule_inputs())
    rs = load_rules(f, templates={"zz_x"})
    assert load_rules(f).warnings[0].message == "template names not checked: no template list was given"
    assert rs.rules[0].rule.notify is not None and rs.rules[0].rule.notify.template == "zz_x"


def test_content_hash_follows_names_and_bytes(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_PACK, tmp_path / "pack")
    pack = tmp_path / "pack"
    first = content_hash(pack)
    assert content_hash(pack) == first == load_rules(pack).content_hash
    f = sorted(pack.glob("*.yaml"))[0]
    f.write_text(f.read_text() + "\n# a comment changes the bytes\n")
    second = content_hash(pack)
    assert second != first
    f.rename(pack / ("renamed-" + f.name))
    assert content_hash(pack) not in (first, second)


class _Declared(NewLocation):
    """A detector that declares its evidence, so conditions on it are checked field by field."""

    name = "declared"
    evidence_fields: ClassVar[Mapping[str, object]] = {"country": str, "known": list, "window_days": int}
    params: ClassVar[Mapping[str, Param]] = NewLocation.params


def test_declared_evidence_fields_are_checked(tmp_path: Path) -> None:
    reg = {"declared": _Declared}
    f = write(
        tmp_path,
        "e.yaml",
        "rules:\n  - id: e1\n    detector: declared\n"
        "    when: finding.evidence.contry == 'JP'\n    severity: low\n",
    )
    with pytest.raises(RuleLoadError) as info:
        load_rules(f, registry=reg)
    assert [e.message for e in info.value.errors] == [
        "when: unknown field 'finding.evidence.contry'. Did you mean 'finding.evidence.country'?"
    ]
    assert (info.value.errors[0].line, info.value.errors[0].col) == (4, 28)
    f.write_text(f.read_text().replace("contry == 'JP'", "window_days > 1"))
    assert load_rules(f, registry=reg).rules[0].condition is not None


@pytest.mark.parametrize(
    ("yaml_value", "value"),
    [
        ('"a == \\"x\\" && b"', 'a == "x" && b'),
        ("'a == ''x'' && b'", "a == 'x' && b"),
        ("|\n      a == 'x' &&\n        b", "a == 'x' &&\n  b\n"),
        (">\n      a == 'x' &&\n      b", "a == 'x' && b\n"),
        ("a == 'x' && b", "a == 'x' && b"),
    ],
)
def test_scalar_positions_survive_quotes_escapes_and_block_styles(yaml_value: str, value: str) -> None:
    from ruamel.yaml import YAML

    text = f"rules:\n  - when: {yaml_value}\n    id: x\n"
    doc = YAML(typ="rt").load(text)
    node = doc["rules"][0]
    assert node["when"] == value
    vl, vc = node.lc.value("when")
    offset = value.index("b")
    line, col = scalar_position(text, vl + 1, vc + 1, value, offset)
    assert text.split("\n")[line - 1][col - 1] == "b"


VALID = (DEFAULT_PACK / "logins.yaml").read_text(encoding="utf-8")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(0, len(VALID)),
    length=st.integers(0, 12),
    junk=st.text(alphabet=" \t\n:-[]{}#'\"&*!|>%@`,?abc019", max_size=8),
)
def test_any_edit_gives_a_rule_set_or_positioned_errors_never_a_traceback(
    tmp_path: Path, cut: int, length: int, junk: str
) -> None:
    f = tmp_path / "mutated.yaml"
    f.write_text(VALID[:cut] + junk + VALID[cut + length :], encoding="utf-8")
    lines = f.read_text(encoding="utf-8").split("\n")
    try:
        load_rules(f)
    except RuleLoadError as e:
        assert e.errors
        for err in e.errors:
            assert 1 <= err.line <= len(lines) and err.col >= 1, str(err)
            assert "Input should" not in err.message, str(err)


def test_anchors_aliases_and_number_spellings_are_plain_values(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        detectors:
          large_withdrawal: {absolute_usd: 1.5e4, multiple: 0x5}
        rules:
          - id: r1
            detector: new_location
            severity: &sev high
            enabled: &on true
            throttle: {per: 1h, max: 0x3}
            notify: &n {channels: [push], template: new_location}
          - {id: r2, detector: new_location, severity: *sev, enabled: *on, notify: *n}
        """
    )
    rs = load_rules(write(tmp_path, "a.yaml", text))
    assert [(r.rule.severity, r.rule.enabled) for r in rs.rules] == [("high", True), ("high", True)]
    assert rs.rules[0].rule.throttle is not None and rs.rules[0].rule.throttle.max == 3
    assert rs.configs["large_withdrawal"].base.p["absolute_usd"] == 15000.0
