"""The outside check, as a reviewer runs it: ``vigil demo --no-serve``, then ``vigil serve`` on its
data; "it was me" on one link and "not me" on another link of the same alert leaves the account
frozen, and no confirmation token printed by the demo appears in the server's log."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import pick_free_port

VIGIL = [sys.executable, "-m", "vigil.cli"]


def _answer(link: str, action: str) -> httpx.Response:
    page = httpx.get(link, timeout=30)
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, page.text[:300]
    return httpx.post(link, data={"csrf": m.group(1), "answer": action}, timeout=30)


@pytest.mark.slow
def test_demo_then_serve_confirm_then_deny_freezes_and_the_log_has_no_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    demo = subprocess.run([*VIGIL, "demo", "--no-serve", "--accounts", "40"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
    links: dict[str, list[str]] = {}
    current = None  # the listing: "acct-…  rule  (a_…)" then one "channel  link" line per channel
    for line in demo.stdout.splitlines():
        if head := re.search(r"\((a_[0-9a-f]+)\)\s*$", line):
            current = head.group(1)
        elif current and (row := re.match(r"\s+(\w+)\s+(http\S+)\s*$", line)):
            links.setdefault(current, []).append(row.group(2))
    alert_id, pair = next((a, ls) for a, ls in links.items() if len(ls) >= 2)
    tokens = set(re.findall(r"/c/([A-Za-z0-9_\-]{20,})", demo.stdout))
    assert tokens

    port = pick_free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([*VIGIL, "serve", "--port", str(port)], cwd=tmp_path, stdout=out,
                                  stderr=subprocess.STDOUT, env={**env, "VIGIL_DATABASE_URL": "sqlite:///vigil-demo.db"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        first, second = (link.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for link in pair[:2])
        assert _answer(first, "confirm").status_code == 200
        assert _answer(second, "deny").status_code == 200
    finally:
        server.terminate()
        server.wait(30)
    with sqlite3.connect(tmp_path / "vigil-demo.db") as db:
        (account,) = db.execute("SELECT account_id FROM vigil_alerts WHERE id = ?", (alert_id,)).fetchone()
        (status,) = db.execute("SELECT status FROM vigil_accounts WHERE account_id = ?", (account,)).fetchone()
        (alert_status,) = db.execute("SELECT status FROM vigil_alerts WHERE id = ?", (alert_id,)).fetchone()
    assert (status, alert_status) == ("frozen", "denied")
    served = log.read_text()
    assert "POST /c/[redacted]" in served  # the requests were logged ...
    assert not [t for t in tokens if t in served]  # ... without a single token
