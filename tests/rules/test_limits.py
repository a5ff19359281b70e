"""Rule files cannot hang or crash the engine: size, alias, nesting and cost limits; any load
failure is a refused set.  The messages themselves are golden files (``invalid/limits-*``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DETECTORS
from detectors.base import Detector, Finding
from rules.engine import evaluate
from rules.limits import COST_BUDGET, MAX_CONDITION_CHARS, condition_problems, cost, yaml_problems
from rules.loader import RuleLoadError, load_rules
from rules.reload import RuleSetManager

INVALID = Path(__file__).with_name("invalid")
VIGIL = [sys.executable, "-m", "vigil.cli"]
NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)


def rule(when: str) -> str:
    return textwrap.dedent(f"""\
        rules:
          - id: r
            detector: new_location
            severity: low
            when: '{when}'
        """)


@pytest.mark.parametrize("case", ["limits-alias-bomb", "limits-condition-3000-bangs"])
def test_vigil_rules_check_refuses_hostile_files_quickly_with_a_message(case: str) -> None:
    """The outside check, literally: the real command, a 20 s limit, a message, no traceback."""
    t0 = time.monotonic()
    proc = subprocess.run([*VIGIL, "rules", "check", str(INVALID / f"{case}.yaml")], capture_output=True,
                          text=True, timeout=20)
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    expected = (INVALID / f"{case}.txt").read_text().strip().split(": ", 1)[1]
    assert expected in proc.stdout
    assert proc.stderr.startswith("1 mistake in 1 file. Fix them and run the check again")
    assert took < 20


def test_ordinary_anchors_stay_allowed_but_their_expansion_counts() -> None:
    shared = "defaults: &n {channels: [push], template: new_location}\n"
    assert yaml_problems(shared + "a: *n\nb: *n\n") == []
    bomb = "a: &a [" + ",".join(["x"] * 300) + "]\nb: &b [" + ",".join(["*a"] * 300) + "]\n"
    problems = yaml_problems(bomb)
    assert len(problems) == 1 and "once its aliases are expanded" in problems[0][2]


@pytest.mark.parametrize(
    "when",
    ["!" * 3000 + "true", "(" * 500 + "true" + ")" * 500, "-" * 1000 + "1 > 0",
     "true ? " * 200 + "true" + " : false" * 200, " + ".join(["1"] * 600) + " > 0",
     "[" * 300 + "]" * 300 + " == []"],
)
def test_pathological_conditions_are_refused_before_any_recursive_parser(when: str) -> None:
    assert condition_problems(when[:MAX_CONDITION_CHARS]) != []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["!", "-", "(", ")", "[", "]", "1", "true", " && ", " + ", " ? ", " : ",
                                 ".all(x, ", "finding.score", ",", " in "]), max_size=700))
def test_any_condition_text_is_refused_or_loaded_never_a_crash(tmp_path_factory: Any, parts: list[str]) -> None:
    when = "".join(parts).replace("'", "")
    path = tmp_path_factory.mktemp("r") / "r.yaml"
    path.write_text(rule(when) if when.strip() else rule("true"))
    try:
        load_rules(path)
    except RuleLoadError as e:
        assert all("could not be loaded" not in x.message for x in e.errors), e.errors


def test_the_static_budget_counts_comprehensions_by_their_lists() -> None:
    from rules.celparse import Parser

    cheap = Parser('finding.event_ids.exists(e, e == "x")').parse()
    costly = Parser("finding.event_ids.all(a, finding.event_ids.exists(b, a == b))").parse()
    small = Parser("[1, 2, 3].all(a, [1, 2].exists(b, a == b))").parse()
    assert cost(cheap) < COST_BUDGET < cost(costly)
    assert cost(small) < 100


class Exploding(Detector):
    """A detector whose construction fails in a way nobody foresaw (not a ParameterError)."""

    name = "new_location"
    family = "login"
    table = "logins"
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        raise RuntimeError("boom")


def test_any_exception_while_loading_is_a_refused_set(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(rule("true"))
    with pytest.raises(RuleLoadError) as info:
        load_rules(path, registry={**DETECTORS, "new_location": Exploding})
    assert "could not be loaded (RuntimeError: boom)" in info.value.errors[0].message


def test_reload_refuses_on_any_exception_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(rule("true"))
    calls = {"n": 0}

    def loader(p: Path) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise MemoryError("the loader ran out of memory")
        return load_rules(p)

    m = RuleSetManager(path, loader=loader)
    good = m.current
    path.write_text(rule("finding.score > 0.5"))
    res = m.maybe_reload(NOW)
    assert res.status == "refused" and m.current is good
    assert "could not be loaded (MemoryError)" in res.errors[0].message


class Slow:
    """A condition that burns more CPU than its budget (stands in for a pathological regex)."""

    reads = None
    calls = 0

    def test(self, ctx: Any) -> tuple[bool, str | None]:
        Slow.calls += 1
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.08:
            pass
        return True, None


class Preempted:
    """A cheap condition that a busy machine interrupted once: slow by the clock, not by CPU."""

    reads = None
    calls = 0

    def test(self, ctx: Any) -> tuple[bool, str | None]:
        Preempted.calls += 1
        if Preempted.calls == 1:
            time.sleep(0.08)
        return True, None


def test_a_condition_over_its_run_time_budget_stops_matching_for_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(rule("finding.score > 0.0"))
    rs = load_rules(path)
    rs.rules[0].condition = Slow()  # type: ignore[assignment]
    findings = [Finding("new_location", f"A{i}", NOW, f"k{i}", "country", 0.9, (f"e{i}",)) for i in range(5)]
    errors: list[str] = []
    decisions = evaluate(rs, findings, {}, now=NOW, on_error=lambda rid, f, msg: errors.append(msg))
    assert decisions == [] and Slow.calls == 2  # timed again by CPU, then off for the batch
    assert len(errors) == 1 and "over its evaluation budget" in errors[0]


def test_a_loaded_machine_does_not_switch_a_cheap_condition_off(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(rule("finding.score > 0.0"))
    rs = load_rules(path)
    rs.rules[0].condition = Preempted()  # type: ignore[assignment]
    findings = [Finding("new_location", f"A{i}", NOW, f"k{i}", "country", 0.9, (f"e{i}",)) for i in range(5)]
    errors: list[str] = []
    decisions = evaluate(rs, findings, {}, now=NOW, on_error=lambda rid, f, msg: errors.append(msg))
    assert len(decisions) == 5 and errors == [] and Preempted.calls == 6


DEEP = "a: " + "[" * 70 + "]" * 70 + "\n"
BOMB = "a: &a [" + ",".join(["x"] * 300) + "]\nb: &b [" + ",".join(["*a"] * 300) + "]\n"


@pytest.mark.parametrize("text", [
    "a: 1\nb: [1, 2]\n",
    "defaults: &n {channels: [push]}\na: *n\nb: *n\n",
    BOMB,
    DEEP,
    "x: *nowhere\n" + BOMB,  # the composer stops at the unknown alias; the event scan goes on to the bomb
    "a:\n  - 1\n - 2\nb: 3\n" + BOMB,  # a syntax error before the bomb: the error, then the bomb
    BOMB.replace("b: &b", "b: &b [x]\n  c:"),  # a syntax error inside the bomb
    "a: 1\n---\nb: 2\n",
    "rules:\n  - id: r\n    when: 'true'\n  - id: s\n   when: 'x'\n",
])
def test_limits_on_the_load_s_events_answer_as_a_separate_scan_does(text: str) -> None:
    """One parse (the limits judged on the events the load reads) gives exactly what the
    two-parse flow (a scan of the events, then the load) gives: document, problems, lines left out."""
    from confkit import recover
    from rules.limits import YamlLimits

    one = recover(text, guard=yaml_problems, event_guard=YamlLimits, unit="rule")
    two = recover(text, guard=yaml_problems, unit="rule")
    assert (one.doc, one.problems, one.skipped) == (two.doc, two.problems, two.skipped)
