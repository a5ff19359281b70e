"""The docs cannot drift: every ``bash`` block of README.md and docs/*.md runs against the demo data,
and a block that cannot run here says why and is still checked against the CLI.  The rules are in
``tests/docs/doctest_md.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.docs.doctest_md import REPO, Block, blocks, check_command, doc_files, run, static_problems, write_demo_data

ALL = [b for f in doc_files() for b in blocks(f)]
RUNNABLE = {f: [b for b in blocks(f) if b.lang == "bash" and b.not_run is None] for f in doc_files()}
SLOW = {"quality.md"}  # six full evaluations (about 20 s of CPU each)


def test_the_docs_have_blocks_to_check() -> None:
    assert len(ALL) > 25 and sum(len(v) for v in RUNNABLE.values()) >= 5
    assert any(b.not_run for b in ALL)


def test_every_block_is_tagged_and_every_command_sits_where_it_is_checked() -> None:
    problems = [p for b in ALL for p in static_problems(b)]
    assert problems == [], "\n".join(problems)


def test_the_static_checks_catch_drift() -> None:
    """Not vacuous: a renamed command, a removed option, an untagged or mis-tagged command, a
    missing reason and a missing script are each reported."""
    assert check_command("vigil tickets lst") and "has no command 'lst'" in check_command("vigil tickets lst")[0]
    assert check_command("vigil tickets list [--queu Q]...") == ["'vigil tickets list' has no option --queu"]
    assert check_command("vigil --db sqlite:///x.db accounts show ID --json") == []
    assert check_command("vigil demo --no-serve --port 1") == []
    assert check_command(".venv/bin/python bench/no_such_bench.py")
    here = REPO / "README.md"
    assert static_problems(Block(here, 1, "", "vigil scan --once\n"))
    assert static_problems(Block(here, 1, "text", "vigil scan --once\n"))
    assert static_problems(Block(here, 1, "bash", "# not run:\nvigil run\n"))
    assert static_problems(Block(here, 1, "bash", "# not run: a daemon\nvigil run --forever\n"))
    assert static_problems(Block(here, 1, "bash", "# not run: a daemon\nvigil run\n")) == []
    two = Block(here, 1, "bash", "vigil backtest --data a \\\n   --out b.csv   # note\nvigil tickets list\n")
    assert two.commands() == [(2, "vigil backtest --data a --out b.csv   # note"), (4, "vigil tickets list")]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("doc-data")
    write_demo_data(root)
    return root


@pytest.mark.timeout(2400)  # quality.md: six evaluations, minutes of wall-clock time on a busy machine
@pytest.mark.parametrize("doc", [pytest.param(f, id=f.name, marks=[pytest.mark.slow] if f.name in SLOW else [])
                                 for f, bs in RUNNABLE.items() if bs])
def test_the_commands_of_each_doc_run(doc: Path, demo_data: Path, tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    shutil.copytree(demo_data, sandbox)
    results = run(RUNNABLE[doc], sandbox)
    assert results, doc
    last = results[-1]
    assert last.returncode == 0, f"{last.block.where}: the block failed:\n{last.output[-4000:]}"
    assert len(results) == len(RUNNABLE[doc])
    for r in results:
        assert "Traceback" not in r.output, f"{r.block.where}:\n{r.output[-4000:]}"
        assert "no database configured" not in r.output  # the sandbox names its database
