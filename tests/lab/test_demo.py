"""``vigil demo`` (a lab command, registered through the ``vigil.commands`` entry points): it runs
the whole loop, and what it prints is true -- counts, links, SMS rows, the commands to look later."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from alerts.store.models import AlertRow, ConfirmToken, OutboxRow
from alerts.tokens import hash_token
from vigil.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    tmp = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{tmp / 'demo.db'}"
    r = CliRunner().invoke(main, ["demo", "--no-serve", "--accounts", "30", "--data-dir", str(tmp / "demo-data"),
                                  "--db", url])
    assert r.exit_code == 0, r.output
    return r.stdout, url, tmp


def test_the_demo_runs_the_whole_loop(demo) -> None:  # type: ignore[no-untyped-def]
    out, _, _ = demo
    assert "planted incidents" in out
    assert "Was this you?" in out or "本人" in out  # the console delivered messages


def test_the_alert_count_is_the_list_and_shadow_alerts_say_so(demo) -> None:  # type: ignore[no-untyped-def]
    out, url, _ = demo
    m = re.search(r"3\. scanned .*?: (\d+) alert\(s\): (\d+) live \(the account holder is told\)"
                  r"(?:, (\d+) shadow \(recorded for investigators, sent to nobody\))?", out)
    assert m, out
    total, live, shadow = int(m[1]), int(m[2]), int(m[3] or 0)
    listed = [line for line in out.splitlines() if re.match(r"   \d{4}-\d\d-\d\d \d\d:\d\d  ", line)]
    assert len(listed) == total == live + shadow and shadow > 0
    assert sum(line.endswith("[shadow]") for line in listed) == shadow
    with create_engine(url).connect() as c:
        modes = dict(c.execute(select(AlertRow.mode, func.count()).group_by(AlertRow.mode)).all())
    assert modes == {"live": live, "shadow": shadow}


def test_every_link_sent_is_listed_and_sms_rows_carry_none(demo) -> None:  # type: ignore[no-untyped-def]
    out, url, _ = demo
    section = out[out.index("\n5. ") + 1:out.index("\n6. ")]
    m = re.match(r"5\. (\d+) alert\(s\) ask \"was this you\?\"; (\d+) confirmation link\(s\) went out", section)
    assert m, section
    asking, sent = int(m[1]), int(m[2])
    links = re.findall(r"^     (email|push)\s+(http://127\.0\.0\.1:\d+/c/(\S+))$", section, re.M)
    assert len(links) == sent and "more link(s) not shown" not in section
    sms_rows = [line for line in section.splitlines() if line.startswith("     sms")]
    assert sms_rows and all("http" not in line and re.search(r'"N \d{4}" \(not me\)', line) for line in sms_rows)
    with create_engine(url).connect() as c:
        for channel, _, token in links:  # each printed link is a live token of that channel
            row = c.execute(select(ConfirmToken.channel, ConfirmToken.used_at)
                            .where(ConfirmToken.token_hash == hash_token(token))).one()
            assert row == (channel, None)
        n_asking = c.scalar(select(func.count()).select_from(AlertRow)
                            .where(AlertRow.confirm.is_(True), AlertRow.mode == "live"))
        with_link = c.scalar(select(func.count(func.distinct(OutboxRow.alert_id)))
                             .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
                             .where(OutboxRow.channel.in_(["email", "push"]), OutboxRow.status == "delivered",
                                    OutboxRow.purpose == "alert", AlertRow.confirm.is_(True)))
    assert asking == n_asking and len({t for *_, t in links}) == sent
    assert len(re.findall(r"^   acct-\d+  \S+  \(a_\w+\)$", section, re.M)) == with_link > 0


def test_the_commands_it_prints_to_look_afterwards_work(demo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out, url, _ = demo
    section = out[out.index("6. look at the demo's accounts and tickets"):]
    lines = [line.strip() for line in section.splitlines()[1:]]
    assert lines[0].startswith("cd ")
    commands = [shlex.split(line.split("   #")[0]) for line in lines[1:] if line.startswith("vigil ")]
    assert [c[3:5] for c in commands][:3] == [["accounts", "list"], ["accounts", "show"], ["tickets", "list"]]
    assert all(c[:3] == ["vigil", "--db", url] for c in commands)
    monkeypatch.chdir(lines[0].removeprefix("cd "))
    for c in commands:
        if "ACCOUNT" in c:
            continue
        r = CliRunner().invoke(main, c[1:])
        assert r.exit_code == 0 and r.stderr == "", (c, r.output)
        assert r.stdout.strip(), c
    account = commands[1][5]
    r = CliRunner().invoke(main, ["--db", url, "accounts", "show", account])
    assert r.stdout.startswith(f"{account}  ACTIVE") and "open alerts (" in r.stdout and "last logins (5):" in r.stdout


def test_links_beyond_the_cap_are_counted_not_dropped_silently(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from vigil_lab import demo

    monkeypatch.setattr(demo, "MAX_LINKS", 3)
    alerts = [SimpleNamespace(id=f"a{i}", account_id=f"acct-{i}", rule_id="r", sms_code=f"{i}000") for i in range(3)]
    links = [(f"a{i}", ch, f"http://x/c/{i}{ch}") for i in range(3) for ch in ("email", "push", "sms")]
    demo._print_links(alerts, links, sms_sent={"a0"})  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "6 confirmation link(s) went out" in out
    assert out.count("http://x/c/") == 3 and "/c/0sms" not in out  # the SMS got no link
    assert 'sms    no link in an SMS: the holder replies "N 0000"' in out
    assert out.rstrip().endswith("... and 3 more link(s) not shown (run with fewer --accounts to see all)")


def test_the_printed_vigil_is_the_one_the_user_ran(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vigil_lab.demo import vigil_command

    exe = tmp_path / ".venv" / "bin" / "vigil"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("sys.argv", [".venv/bin/vigil", "demo"])
    assert vigil_command() == ".venv/bin/vigil"  # scripts/demo: not on the PATH
    monkeypatch.setattr("sys.argv", [str(exe), "demo"])
    assert vigil_command() == ".venv/bin/vigil"
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin:/bin")
    assert vigil_command() == "vigil"  # an activated venv
    monkeypatch.setattr("sys.argv", ["/usr/lib/python3/pytest", "demo"])
    assert vigil_command() == "vigil"
