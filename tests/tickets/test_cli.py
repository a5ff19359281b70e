"""``vigil tickets ...`` through the real command line (Click), on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.app.helpers import Clock, make_app
from tickets.core import open_or_attach
from vigil.cli import main


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, list[str]]]:
    clock = Clock()
    app = make_app(db_url, clock)
    ids = []
    with app.sessions.begin() as s:
        for i, (cat, prio) in enumerate([("account_security", "P1"), ("trading", "P4"), ("api", "P2")]):
            ids.append(open_or_attach(s, account_id=f"A{i}", category=cat, priority=prio, now=clock(),
                                      subject=f"subject {i}", kind="alert", ref_id=f"r{i}").id)
    app.close()
    monkeypatch.setenv("VIGIL_DATABASE_URL", db_url)
    yield CliRunner(), ids


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_list_show_assign_resolve(cli: tuple[CliRunner, list[str]]) -> None:
    runner, ids = cli
    out = run(runner, "tickets", "list", "--per-page", "2")
    assert out.exit_code == 0 and "page 1/2, 3 ticket(s)" in out.output
    assert out.output.index(ids[0]) < out.output.index(ids[2])  # P1 before P2
    js = json.loads(run(runner, "tickets", "list", "--queue", "trading", "--queue", "api", "--json").output)
    assert sorted(t["id"] for t in js["items"]) == sorted(ids[1:])
    assert json.loads(run(runner, "tickets", "list", "--priority", "P1", "--sla", "ok", "--json").output)[
        "total"] == 1

    out = run(runner, "tickets", "assign", ids[0], "kim", "--as", "lee")
    assert out.exit_code == 0 and "assigned to kim in queue security (open)" in out.output
    out = run(runner, "tickets", "resolve", ids[0], "--code", "risk_confirmed", "--note", "SIM swap")
    assert out.exit_code == 0 and "resolved as risk_confirmed" in out.output
    shown = json.loads(run(runner, "tickets", "show", ids[0], "--json").output)
    assert shown["status"] == "resolved" and shown["assignee"] == "kim"
    assert [e["kind"] for e in shown["timeline"]] == ["opened", "alert", "status", "assigned", "status",
                                                      "resolved", "survey"]
    text = run(runner, "tickets", "show", ids[0]).output
    assert "resolution_code        risk_confirmed" in text and "staff:lee" in text
    assert json.loads(run(runner, "tickets", "list", "--status", "resolved", "--json").output)["total"] == 1


def test_mistakes_are_one_line_errors(cli: tuple[CliRunner, list[str]], tmp_path: Path) -> None:
    runner, ids = cli
    out = run(runner, "tickets", "show", "t_nope")
    assert out.exit_code == 1 and out.output.strip() == "vigil: no ticket 't_nope'"
    out = run(runner, "tickets", "list", "--status", "opne")
    assert out.exit_code == 1 and "vigil: status: unknown value(s) 'opne'" in out.output
    out = run(runner, "tickets", "move", ids[1], "close")
    assert out.exit_code == 1 and "cannot take 'close'" in out.output
    out = run(runner, "tickets", "resolve", ids[1], "--code", "fine")
    assert out.exit_code == 2 and "Invalid value for '--code'" in out.output
    bad = tmp_path / "p.yaml"
    bad.write_text("queues: {}\ndefault_queue: nowhere\nsla: {targets: {}}\n")
    out = run(runner, "tickets", "check-policy", str(bad))
    assert out.exit_code == 2 and f"{bad}:2:16: default_queue: unknown queue 'nowhere'" in out.output
    assert "Traceback" not in out.output


def test_policy_classifier_and_sla_tools(cli: tuple[CliRunner, list[str]]) -> None:
    runner, _ = cli
    out = run(runner, "tickets", "check-policy")
    assert out.exit_code == 0 and "vip-security: {'category': ['account_security']" in out.output
    js = json.loads(run(runner, "tickets", "classify", "출금이 안 돼요", "--locale", "ko").output)
    assert js["category"] == "deposit_withdrawal" and js["triage"] is False
    out = run(runner, "tickets", "train", "--folds", "2")
    assert out.exit_code == 0 and "320 samples, 2-fold: accuracy" in out.output
    out = run(runner, "tickets", "sla", "--once")
    assert json.loads(out.output)["checked"] == 3
