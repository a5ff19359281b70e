"""Secrets stay out of logs and stdout: tokens, phone numbers, email addresses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from click.testing import CliRunner

from tests.app.helpers import small_dir
from vigil.cli import main
from vigil.redact import RedactFilter, install, redact, uvicorn_log_config


def test_redact_tokens_phones_and_emails() -> None:
    line = ('127.0.0.1:5000 - "POST /c/55WIyaj53hinHqAYTAOZWBZuQ6j2freJ HTTP/1.1" 200 '
            "token=abcDEF0123456789 csrf=deadbeefcafe Authorization: Bearer s3cr3t-" + "x" * 20)
    out = redact(line)
    assert "55WIyaj53hinHqAYTAOZWBZuQ6j2freJ" not in out and "/c/[redacted]" in out
    assert "abcDEF0123456789" not in out and "deadbeefcafe" not in out and "s3cr3t" not in out
    masked = redact("SMS to +821055550001 failed; mail to ana.kim@example.com bounced")
    assert "+821055550001" not in masked and "5550001" not in masked[:-40] and "0001" in masked
    assert "ana.kim@example.com" not in masked and "@example.com" in masked


def test_the_filter_rewrites_uvicorn_access_arguments_in_place() -> None:
    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:1", "GET", "/c/iAN47Bbo9pzQpOTSXG8wAfPzrNzEjocy?x=1", "1.1", 200), None)
    assert RedactFilter().filter(rec)
    assert rec.getMessage() == '127.0.0.1:1 - "GET /c/[redacted]?x=1 HTTP/1.1" 200'
    cfg = uvicorn_log_config()
    assert all("redact" in h["filters"] for h in cfg["handlers"].values())


def test_install_puts_the_filter_on_the_root_handlers(tmp_path: Path) -> None:
    handler = logging.FileHandler(tmp_path / "log.txt")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install()
        logging.getLogger("vigil.test").warning("link http://x/c/%s for %s", "Q" * 32, "+819012345678")
        handler.flush()
    finally:
        root.removeHandler(handler)
        handler.close()
    text = (tmp_path / "log.txt").read_text()
    assert "Q" * 32 not in text and "+819012345678" not in text and "/c/[redacted]" in text


def test_deliver_once_prints_counts_and_no_links(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'v.db'}"
    env = {"VIGIL_DATABASE_URL": db, "VIGIL_CHANNELS__CONSOLE__STREAM": "stderr"}
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(small_dir(tmp_path / "d", bad_row=False))], env=env).exit_code == 0
    assert runner.invoke(main, ["scan", "--once"], env=env).exit_code == 0
    res = runner.invoke(main, ["deliver", "--once"], env=env)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["claimed"] > 0 and "links" not in report
    assert "/c/" not in res.stdout
