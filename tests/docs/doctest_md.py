"""The doc-test runner: every command shown in README.md and docs/*.md runs, or says why not.

Rules the Markdown follows (checked by ``tests/docs/test_docs.py``):

* Every fenced block names its language.  Commands go in ``bash`` blocks; output, diagrams and
  file lists in ``text``; configuration in ``yaml``.  A command-looking line (``vigil …``,
  ``$ …``, ``.venv/bin/…``, ``bash scripts/…``, ``npm …``) outside a ``bash`` block is an error,
  so no command escapes the tests by sitting in the wrong kind of block.
* A ``bash`` block runs, in order with the other blocks of its file, in a sandbox directory that
  holds the demo data as ``./data`` (``vigil demo``'s generator, seed 7: 60 accounts over 21
  days) and its planted incident events as ``./labels.csv``, with ``vigil`` and ``python`` from
  this environment on the ``PATH`` and ``VIGIL_DATABASE_URL`` on a fresh SQLite file.  Every
  command must succeed.
* A ``bash`` block that cannot run here starts with a visible comment, ``# not run: <why>``
  (real Twilio credentials, a daemon that runs until stopped, a synopsis with placeholders).
  Its commands are still checked: each ``vigil`` command and every ``--option`` it names must
  exist in the CLI, and every repository path it names must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```([^\s`]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"^#\s*not run:\s*(.*)$")
COMMAND_LIKE = re.compile(r"^\s*(\$ |vigil |\.venv/bin/|bash scripts/|npm |pip install |python -[mc] )")
REPO_DIRS = ("alerts/", "bench/", "delivery/", "detectors/", "docs/", "notifiers/", "rules/", "scripts/",
             "tests/", "tickets/", "vigil/", "lab/")


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason after ``# not run:`` on the block's first line ("" if the reason is missing)."""
        first = next((x.strip() for x in self.text.splitlines() if x.strip()), "")
        m = NOT_RUN.match(first)
        return m.group(1).strip() if m else None

    def commands(self) -> list[tuple[int, str]]:
        """(line, command) pairs: comments and blank lines dropped, continuations joined (a trailing
        backslash, or a synopsis line indented under its command)."""
        out: list[tuple[int, str]] = []
        pending = False
        for i, raw in enumerate(self.text.splitlines(), start=self.line + 1):
            line = raw.rstrip()
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                pending = False
                continue
            if out and (pending or (raw[:1].isspace() and not stripped.startswith("#"))):
                out[-1] = (out[-1][0], f"{out[-1][1]} {stripped.removesuffix(chr(92)).strip()}")
            else:
                out.append((i, stripped.removesuffix("\\").strip()))
            pending = stripped.endswith("\\")
        return out


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(path, text[:m.start()].count("\n") + 1, m.group(1).strip().lower(), m.group(2))
            for m in FENCE.finditer(text)]


def static_problems(block: Block) -> list[str]:
    """What is wrong with a block without running anything."""
    if not block.lang:
        return [f"{block.where}: a fenced block without a language: tag it bash (commands), "
                f"text (output, diagrams, file lists), yaml, python, ..."]
    if block.lang != "bash":
        bad = [line for line in block.text.splitlines() if COMMAND_LIKE.match(line)]
        if bad:
            return [f"{block.where}: a command in a {block.lang} block ({bad[0].strip()[:60]!r}): commands go "
                    f"in bash blocks, where they run (or start the block with '# not run: <why>')"]
        return []
    reason = block.not_run
    if reason is None:
        return []
    problems = [] if reason else [f"{block.where}: '# not run:' without a reason: say why it cannot run here"]
    for line, cmd in block.commands():
        problems += [f"{block.path.relative_to(REPO)}:{line}: {p}" for p in check_command(cmd)]
    return problems


def _tokens(cmd: str) -> list[str]:
    cmd = cmd.split(" # ", 1)[0]
    try:
        return shlex.split(cmd)
    except ValueError:  # a synopsis with unbalanced brackets or quotes
        return cmd.split()


def check_command(cmd: str) -> list[str]:
    """A command that is shown but not run must still exist: ``vigil`` subcommands and options
    against the CLI, paths against the repository."""
    words = _tokens(cmd)
    if not words:
        return []
    if words[0] == "vigil":
        return check_vigil(words[1:])
    problems = []
    if words[0].endswith("python") and len(words) > 1 and words[1].startswith("bench/") and words[1].endswith(".py"):
        problems += check_script(words[1], words[2:])
    for w in words:
        w = w.strip("[](),;'\"")
        if w.startswith(REPO_DIRS) and not (REPO / w).exists():
            problems.append(f"{cmd!r}: {w} does not exist in the repository")
    return problems


_SCRIPT_OPTIONS: dict[str, set[str]] = {}


def check_script(script: str, args: list[str]) -> list[str]:
    """A benchmark script's options as the doc shows them, against the script's own ``--help``."""
    import subprocess
    import sys

    if not (REPO / script).is_file():
        return []  # reported as a missing path
    if script not in _SCRIPT_OPTIONS:
        r = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
        _SCRIPT_OPTIONS[script] = set(re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", r.stdout)) if r.returncode == 0 \
            else set()
    known = _SCRIPT_OPTIONS[script]
    used = {o for a in args for o in re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", a)}
    return [f"{script} has no option {o} (its --help lists: {', '.join(sorted(known)) or 'none'})"
            for o in sorted(used - known)]


def check_vigil(args: list[str]) -> list[str]:
    import click

    from vigil.cli import main

    cmd: Any = main
    ctx = click.Context(main, info_name="vigil")
    path = ["vigil"]
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            opt = _option(cmd, a)
            if opt is None:
                return [f"'{' '.join(path)}' has no option {a.split('=')[0]}"]
            i += 1 if (opt.is_flag or "=" in a or opt.count) else 2
            continue
        if isinstance(cmd, click.Group):
            sub = cmd.get_command(ctx, a)
            if sub is None:
                return [f"'{' '.join(path)}' has no command {a!r} (has: {', '.join(cmd.list_commands(ctx))})"]
            cmd, path = sub, [*path, a]
            i += 1
            continue
        break  # arguments and synopsis placeholders from here on
    problems = []
    for a in args[i:]:
        for opt in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", a):
            if _option(cmd, opt) is None:
                problems.append(f"'{' '.join(path)}' has no option {opt}")
    return problems


def _option(cmd: Any, name: str) -> Any:
    name = name.split("=")[0]
    for p in getattr(cmd, "params", []):
        if name in getattr(p, "opts", []) or name in getattr(p, "secondary_opts", []):
            return p
    if name == "--help":
        return _Flag()
    return None


class _Flag:
    is_flag = True
    count = False


def sandbox_env(sandbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIGIL_DATABASE_URL"] = f"sqlite:///{sandbox / 'vigil.db'}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_demo_data(target: Path) -> None:
    """``./data`` and ``./labels.csv``: the demo's data set (seed 7, 60 accounts, 21 days to today)."""
    from datetime import UTC, datetime, timedelta

    from vigil_lab import synth

    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=21)).replace(hour=0, minute=0, second=0)
    frames, labels = synth.generate_with_labels(seed=7, accounts=60, days=21, start=start)
    synth.write_dir(frames, target / "data", fmt="csv")
    ids = sorted({e for inc in labels["planted"] for e in inc["event_ids"]})
    (target / "labels.csv").write_text("event_id\n" + "".join(f"{e}\n" for e in ids), encoding="utf-8")


@dataclass(frozen=True)
class Ran:
    block: Block
    returncode: int
    output: str


def run(runnable: Iterable[Block], sandbox: Path, *, timeout: float = 1200) -> list[Ran]:
    """Run each block as a bash script (``set -euo pipefail``) in ``sandbox``; stop at the first failure."""
    out: list[Ran] = []
    env = sandbox_env(sandbox)
    for b in runnable:
        script = ("set -euo pipefail\n"
                  "trap 'echo \"doc-test: this command failed (exit $?): $BASH_COMMAND\" >&2' ERR\n" + b.text)
        p = subprocess.run(["bash", "-c", script], cwd=sandbox, env=env, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        out.append(Ran(b, p.returncode, p.stdout + p.stderr))
        if p.returncode != 0:
            break
    return out
