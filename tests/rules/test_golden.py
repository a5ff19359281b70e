"""Golden files: each ``invalid/NAME.yaml`` holds mistakes, ``invalid/NAME.txt`` the exact messages.

The loader runs against the real detector registry, channel registry and notifier templates,
passed in the way the composition root passes them (``vigil.bootstrap.rule_inputs``).
Paths in the messages are shown relative to ``invalid/``.  To review a changed wording, run
``python tests/rules/test_golden.py`` and compare its output with the ``.txt`` files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rules.loader import RuleLoadError, load_rules
from vigil.bootstrap import rule_inputs

HERE = Path(__file__).with_name("invalid")
CASES = sorted(HERE.glob("*.yaml"))


def render(path: Path) -> str:
    try:
        load_rules(path, **rule_inputs())
    except RuleLoadError as e:
        return "\n".join(str(x).replace(str(path), path.name) for x in e.errors) + "\n"
    return "(no error)\n"


def test_at_least_25_distinct_mistakes() -> None:
    assert len(CASES) >= 25
    assert all(c.with_suffix(".txt").is_file() for c in CASES), "every golden .yaml needs its .txt"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path) -> None:
    expected = case.with_suffix(".txt").read_text(encoding="utf-8")
    assert render(case) == expected


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_positions_point_inside_the_file(case: Path) -> None:
    lines = case.read_text(encoding="utf-8").split("\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(case, **rule_inputs())
    for e in info.value.errors:
        assert 1 <= e.line <= len(lines), str(e)
        assert 1 <= e.col <= len(lines[e.line - 1]) + 1, str(e)
        assert "Input should" not in e.message and "pydantic" not in e.message, str(e)


if __name__ == "__main__":  # pragma: no cover - review helper
    for c in CASES:
        sys.stdout.write(f"### {c.name}\n{render(c)}")
