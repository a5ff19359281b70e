"""``vigil rules check | init | explain`` through the real ``vigil`` command, on real files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rules.celparse import Parser
from rules.explain import describe_condition
from rules.loader import DEFAULT_PACK, load_rules
from vigil.cli import main

INVALID = Path(__file__).with_name("invalid")


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["rules", *args], catch_exceptions=False)
    return res.exit_code, res.output


def test_check_accepts_the_default_pack() -> None:
    code, out = run("check", str(DEFAULT_PACK))
    assert code == 0, out
    assert out.rstrip().split("\n")[-1].startswith(f"OK: {len(load_rules(DEFAULT_PACK).rules)} rules in ")


def test_check_reports_every_error_and_exits_1() -> None:
    code, out = run("check", str(INVALID / "many-mistakes.yaml"))
    assert code == 1
    lines = [ln for ln in out.split("\n") if ln.startswith(str(INVALID))]
    assert len(lines) == len((INVALID / "many-mistakes.txt").read_text().strip().split("\n"))
    assert "Traceback" not in out and "nothing was applied" not in out
    assert out.rstrip().split("\n")[-1] == (
        f"{len(lines)} mistakes in 1 file. Fix them and run the check again; a running Vigil keeps its "
        "current rules until the set checks clean.")


def test_check_json_for_ci() -> None:
    code, out = run("check", str(INVALID), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert {e["path"] for e in doc["errors"]} == {str(p) for p in INVALID.glob("*.yaml")}
    assert all({"path", "line", "col", "rule", "message"} <= set(e) for e in doc["errors"])
    code, out = run("check", str(DEFAULT_PACK), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and len(doc["content_hash"]) == 64
    assert [r["id"] for r in doc["rules"]] == [r.id for r in load_rules(DEFAULT_PACK).rules]


def test_init_writes_a_commented_pack_that_checks_clean(tmp_path: Path) -> None:
    target = tmp_path / "rules"
    code, out = run("init", str(target))
    assert code == 0, out
    written = sorted(p.relative_to(target) for p in target.rglob("*.yaml"))
    assert written == sorted(p.relative_to(DEFAULT_PACK) for p in DEFAULT_PACK.rglob("*.yaml"))
    for p in target.rglob("*.yaml"):
        text = p.read_text()
        assert text.startswith(f"# {p.name} -- from Vigil's default rule pack")
        assert f"vigil rules check {target}" in text
    loaded, shipped = load_rules(target), load_rules(DEFAULT_PACK)
    assert [r.rule for r in loaded.rules] == [r.rule for r in shipped.rules]  # comments change nothing
    assert {n: c.base.p for n, c in loaded.configs.items()} == {
        n: c.base.p for n, c in shipped.configs.items()
    }
    assert run("check", str(target))[0] == 0
    code, out = run("init", str(target))
    assert code == 1 and "already exists; use --force" in out
    assert run("init", str(target), "--force")[0] == 0


def test_init_documents_every_parameter_of_the_configured_detectors(tmp_path: Path) -> None:
    run("init", str(tmp_path))
    rs = load_rules(tmp_path)
    lines = [ln for p in tmp_path.rglob("*.yaml") for ln in p.read_text().split("\n")]
    for name, conf in rs.configs.items():
        if conf.sources:  # a detector the pack configures
            for param, p in type(conf.base).params.items():
                documented = any(p.doc in ln for ln in lines)
                commented = any(ln.strip().startswith(f"{param}:") and "#" in ln for ln in lines)
                assert documented or commented, (name, param)


def test_explain_names_parameters_their_sources_and_the_actions() -> None:
    rs = load_rules(DEFAULT_PACK)
    rule = next(r for r in rs.rules if r.rule.notify and r.rule.notify.confirm and r.rule.on_denied)
    code, out = run("explain", rule.id, "--rules", str(DEFAULT_PACK))
    assert code == 0, out
    assert out.startswith(f'rule "{rule.id}"')
    det = rule.rule.detectors[0]
    conf = rs.configs[det]
    for param, where in conf.sources.items():
        assert f"(set at {where})" in out and param in out
    assert "(default)" in out or len(conf.sources) == len(type(conf.base).params)
    assert 'if the holder answers "not me": freeze the account' in out


def test_explain_an_unknown_rule_suggests_the_closest() -> None:
    rid = load_rules(DEFAULT_PACK).rules[0].id
    code, out = run("explain", rid[:-1] + "x", "--rules", str(DEFAULT_PACK))
    assert code == 1 and f"vigil: no rule '{rid[:-1]}x' in {DEFAULT_PACK}. Did you mean '{rid}'?" in out


def test_conditions_read_as_sentences() -> None:
    cases = {
        'finding.kind == "country" && account.tier != "vip"': (
            "the finding's kind is \"country\" and the account's tier is not \"vip\""
        ),
        "(finding.score > 0.5 || account.age_days < 30) && !has(finding.evidence.country)": (
            "(the finding's score is above 0.5 or the account's age days is below 30) and not "
            "(the evidence's country is present)"
        ),
        'finding.kind.startsWith("margin_tier") && finding.evidence.tier >= 2': (
            "the finding's kind starts with \"margin_tier\" and the evidence's tier is at least 2"
        ),
        "finding.event_ids.exists(e, e in ['x'])": "some e in the finding's event ids has e is one of ['x']",
    }
    for src, words in cases.items():
        assert describe_condition(Parser(src).parse(), src) == words


def test_check_a_syntax_error_hides_no_other_mistake() -> None:
    """A YAML syntax error in one rule, a mistyped key and a wrong channel in others: all at once."""
    case = INVALID / "syntax-error-and-other-mistakes.yaml"
    code, out = run("check", str(case))
    assert code == 1
    found = [ln.replace(str(INVALID) + "/", "") for ln in out.split("\n") if ln.startswith(str(INVALID))]
    assert found == (INVALID / "syntax-error-and-other-mistakes.txt").read_text().strip().split("\n")
    assert [ln.split(": ")[0] for ln in found] == [
        "syntax-error-and-other-mistakes.yaml:7:4",
        "syntax-error-and-other-mistakes.yaml:12:5",
        "syntax-error-and-other-mistakes.yaml:19:24",
    ]
    assert out.rstrip().endswith("a running Vigil keeps its current rules until the set checks clean.")
