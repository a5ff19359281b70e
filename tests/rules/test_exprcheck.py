"""The condition checker: what it refuses at load, and that what it accepts really runs."""

from __future__ import annotations

from datetime import UTC, datetime

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import Finding
from rules.context import FindingView, condition_context
from rules.expr import Condition, ExpressionError, environment
from rules.exprcheck import check

FINDING = Finding(
    "new_location", "a1", datetime(2024, 5, 6, 23, 30, tzinfo=UTC), "k1", "country", 0.7, ("e1", "e2"),
    {"country": "JP", "tier": 2, "known": ["KR"]}, "login",
)
CONTEXT = {
    "finding": FindingView(FINDING).full(),
    "account": {
        "account_id": "a1",
        "tier": "vip",
        "locale": "ko-KR",
        "timezone": "Asia/Seoul",
        "age_days": 40,
        "status": "active",
        "country": "KR",
    },
    "profile": {"n": 5},
}

ACCEPTED = [
    ('finding.kind == "country" && account.tier != "institutional"', True),
    ("finding.score >= 0.5 && account.age_days < 90", True),
    ("finding.score > 1", False),  # int and double may be compared
    ('finding.kind in ["country", "city"]', True),
    ('finding.kind.startsWith("coun") || finding.kind.endsWith("x")', True),
    ("size(finding.event_ids) == 2 && finding.event_ids.size() > 1", True),
    ('finding.event_ids.exists(e, e.startsWith("e")) && finding.event_ids.all(e, size(e) == 2)', True),
    ("finding.evidence.tier >= 2 && has(finding.evidence.country)", True),
    ('finding.evidence["country"] == "JP" && !("US" in finding.evidence.known)', True),
    ("finding.ts.getHours() >= 22 || finding.ts.getHours() < 6", True),
    ('finding.ts > timestamp("2024-01-01T00:00:00Z") - duration("24h")', True),
    ("account.age_days * 2 + 1 > 10 ? true : false", True),
    ("double(account.age_days) * 0.5 > finding.score", True),
    ('account.locale.matches("^(ko|ja)")', True),
    ("profile.n > 3", True),
    ("finding.event_ids.filter(e, e != 'e1').size() == 1", True),
    ("finding.id.startsWith('f_') && finding.detector == 'new_location' && finding.family == 'login'", True),
    ('string(account.age_days) == "40"', True),
]


@pytest.mark.parametrize(("src", "value"), ACCEPTED)
def test_accepted_conditions_run_and_give_the_expected_answer(src: str, value: bool) -> None:
    c = Condition(src)
    assert c.test(CONTEXT) == (value, None)
    projected = condition_context(c.reads, FindingView(FINDING), CONTEXT["account"], CONTEXT["profile"])
    assert c.test(projected) == (value, None), c.reads


REFUSED = [
    ("finding.scroe > 0.5", 9, "unknown field 'finding.scroe'. Did you mean 'finding.score'?"),
    ('acount.tier == "vip"', 1, "unknown name 'acount'. Did you mean 'account'?"),
    ('finding.score == "high"', 15, "'==' compares finding.score (a decimal number) with \"high\" (text)"),
    ('finding.score > "0.5"', 15, "write the number without quotes: 0.5"),
    ("finding.score + 1 > 2", 15, "write 1.0"),
    ("account.age_days + finding.score > 2", 18, "cannot mix account.age_days (a whole number)"),
    ("finding.kind.startsWith(1)", 14, "startsWith() takes one text argument, got a whole number"),
    ('account.locale.lowerAscii() == "ko"', 16, "unknown function 'lowerAscii'"),
    ("finding.score", 1, "the condition must be true or false, but it gives a decimal number"),
    ('finding.kind && account.tier == "vip"', 14, "'&&' needs true/false on both sides, but the left side"),
    ("!finding.kind", 1, "'!' needs true/false"),
    ("account.tier.name == 'x'", 14, "'account.tier' is text; it has no field 'name'"),
    ("size(finding.score) > 1", 1, "size() takes a list, a map or text, but got a decimal number"),
    ('finding.kind in "country"', 17, "'in' needs a list or a map on the right"),
    ('account.locale.matches("(ko")', 24, "invalid regular expression '(ko'"),
    ("finding.ts.getHours('Asia/Seoul') > 1", 12, "takes no argument here"),
    ("finding.event_ids.exists(e, e)", 29, "the condition inside exists() must be true or false"),
    ("finding.kind = 'country'", 14, "'=' is not an operator; use == to compare"),
    ("finding.kind == 'x' and account.tier == 'y'", 21, "'and' is not an operator; use &&"),
    ("finding.score >", 16, "the condition ends too early"),
]


@pytest.mark.parametrize(("src", "col", "message"), REFUSED)
def test_refused_conditions_say_why_and_where(src: str, col: int, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Condition(src)
    line, c, msg = info.value.problems[0]
    assert (line, c) == (1, col), msg
    assert message in msg


def test_every_problem_of_one_condition_is_reported() -> None:
    with pytest.raises(ExpressionError) as info:
        Condition('finding.scroe > 0.5 &&\n  account.teir == "vip"')
    assert [(p[0], p[1]) for p in info.value.problems] == [(1, 9), (2, 11)]


def test_refused_type_errors_would_indeed_fail_at_run_time() -> None:
    # the checker is not stricter than CEL: each of these raises in the binding on a real context
    for src in (
        'finding.score == "high" || true',
        "finding.score + 1 > 2",
        'account.locale.lowerAscii() == "ko"',
        "finding.kind.startsWith(1)",
        "account.age_days + finding.score > 2",
    ):
        assert check(src, environment()) is not None
        with pytest.raises((TypeError, RuntimeError)):
            result = cel.evaluate(src, CONTEXT)
            if src.startswith('finding.score == "high"') and result is True:
                raise TypeError("heterogeneous equality is never true: the checker's warning holds")


_FIELDS = {
    "int": ["account.age_days", "size(finding.event_ids)", "finding.ts.getHours()", "3", "0"],
    "double": ["finding.score", "0.5", "double(account.age_days)"],
    "string": ["finding.kind", "account.tier", "account.locale", '"vip"', "finding.id"],
}


@st.composite
def _bool_expr(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["cmp", "str", "num"] + (["and", "or", "not"] if depth < 3 else [])))
    if kind in ("and", "or"):
        op = "&&" if kind == "and" else "||"
        return f"({draw(_bool_expr(depth + 1))} {op} {draw(_bool_expr(depth + 1))})"
    if kind == "not":
        return f"!({draw(_bool_expr(depth + 1))})"
    if kind == "str":
        a, b = draw(st.sampled_from(_FIELDS["string"])), draw(st.sampled_from(_FIELDS["string"]))
        fn = draw(st.sampled_from(["==", "!=", "startsWith", "contains", "<"]))
        return f"{a}.{fn}({b})" if fn.isalpha() else f"{a} {fn} {b}"
    t = draw(st.sampled_from(["int", "double"]))
    a, b = draw(st.sampled_from(_FIELDS[t])), draw(st.sampled_from(_FIELDS[t]))
    if kind == "num":
        arith = draw(st.sampled_from(["+", "-", "*"]))
        a = f"({a} {arith} {b})"
    other = draw(st.sampled_from(_FIELDS[draw(st.sampled_from(["int", "double"]))]))
    return f"{a} {draw(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} {other}"


@settings(max_examples=300, deadline=None)
@given(_bool_expr())
def test_whatever_the_checker_accepts_runs_without_a_type_error(src: str) -> None:
    result = check(src, environment())
    assert result is not None, src
    if result.problems:
        return
    value = cel.evaluate(src, CONTEXT)
    assert value in (True, False), (src, value)
    # evaluation passes only the fields the condition reads: the answer must not change
    c = Condition(src)
    projected = condition_context(c.reads, FindingView(FINDING), CONTEXT["account"], CONTEXT["profile"])
    assert c.test(projected) == (value, None), (src, c.reads)
