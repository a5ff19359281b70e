"""Hot reload keeps the last good rule set, and every applied or refused set is recorded with its hash."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.rule_sets import record_result, record_rule_set
from alerts.store.models import RuleSetRow
from rules.loader import DEFAULT_PACK, RuleLoadError
from rules.reload import RuleSetManager

T0 = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_PACK, tmp_path / "pack")
    return tmp_path / "pack"


def first_rule_file(pack: Path) -> Path:
    return sorted(pack.glob("*.yaml"))[0]


def test_unchanged_applied_refused_and_recovered(pack: Path) -> None:
    m = RuleSetManager(pack)
    good = m.current
    assert m.maybe_reload(T0).status == "unchanged"

    f = first_rule_file(pack)
    original = f.read_text()
    f.write_text(original + "\n# reviewed by the SOC\n")
    r = m.maybe_reload(T0 + timedelta(minutes=1))
    assert r.status == "applied" and r.rule_set is m.current and m.current.content_hash != good.content_hash
    applied = m.current

    f.write_text(original.replace("severity: ", "severity: hihg # ", 1))
    r = m.maybe_reload(T0 + timedelta(minutes=2))
    assert r.status == "refused" and r.errors and "hihg" in str(r.errors[0])
    assert m.current is applied and r.rule_set is applied  # the last good set keeps running

    again = m.maybe_reload(T0 + timedelta(minutes=3))  # same broken bytes: reported once, not every tick
    assert again.status == "unchanged" and again.errors == r.errors and m.current is applied

    f.write_text(original)
    r = m.maybe_reload(T0 + timedelta(minutes=4))
    assert r.status == "applied" and m.current.content_hash == good.content_hash and m.last_errors == []


def test_a_broken_set_at_start_is_not_run(pack: Path) -> None:
    (pack / "broken.yaml").write_text("rules:\n  - id: x\n")
    with pytest.raises(RuleLoadError):
        RuleSetManager(pack)


def test_a_new_file_with_a_duplicate_id_is_refused_as_a_whole(pack: Path) -> None:
    m = RuleSetManager(pack)
    rid = m.current.rules[0].id
    det = m.current.rules[0].rule.detectors[0]
    (pack / "zz-new.yaml").write_text(
        f"rules:\n  - {{id: brand-new, detector: {det}, severity: low}}\n"
        f"  - {{id: {rid}, detector: {det}, severity: low}}\n"
    )
    r = m.maybe_reload(T0)
    assert r.status == "refused" and m.current.get("brand-new") is None
    assert [e.message.split(";")[0] for e in r.errors] == ["id: duplicate rule id"]


def test_records_go_to_the_audit_table(engine: Any, pack: Path) -> None:
    m = RuleSetManager(pack)
    f = first_rule_file(pack)
    with Session(engine) as s:
        record_rule_set(
            s, path=pack, status="applied", content_hash=m.current.content_hash, at=T0, rule_set=m.current
        )
        f.write_text("rules: [oops\n")
        refused = m.maybe_reload(T0 + timedelta(minutes=1))
        record_result(s, pack, refused)
        assert record_result(s, pack, m.maybe_reload(T0 + timedelta(minutes=2))) is None  # unchanged
        s.commit()
    with Session(engine) as s:
        rows = s.scalars(select(RuleSetRow).order_by(RuleSetRow.id)).all()
    assert [r.status for r in rows] == ["applied", "refused"]
    assert rows[0].content_hash == m.current.content_hash and len(rows[0].content_hash) == 64
    assert {r["id"] for r in rows[0].rules} == {cr.id for cr in m.current.rules}
    assert rows[1].rules == [] and rows[1].errors[0]["path"] == str(f)
    assert rows[1].errors[0]["line"] == 2 and "not closed" in rows[1].errors[0]["message"]


def test_a_syntax_error_is_refused_with_every_other_mistake_and_the_last_good_set_runs(pack: Path) -> None:
    m = RuleSetManager(pack)
    good = m.current
    f = max(pack.glob("*.yaml"), key=lambda p: p.read_text().count("  - id: "))  # several rules
    lines = f.read_text().split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("    severity: "))
    lines[at] = "   " + lines[at].lstrip()  # one space short: a YAML syntax error
    typo = next(i for i, ln in enumerate(lines) if i > at and ln.startswith("    detector: "))
    lines[typo] = lines[typo] + "x"  # and an unknown detector in a later rule
    f.write_text("\n".join(lines))
    r = m.maybe_reload(T0)
    assert r.status == "refused" and m.current is good
    assert [(e.line, e.col) for e in r.errors] == [(at + 1, 4), (typo + 1, 15)], r.errors
    assert "indented 3 spaces" in r.errors[0].message and "unknown detector" in r.errors[1].message
