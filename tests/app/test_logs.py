"""Structured logs: named events with fields, text or JSON by setting, never a secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.app.helpers import make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir
from vigil.logs import JsonFormatter, TextFormatter

ROOT = Path(__file__).resolve().parents[2]


def _record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("vigil.test", logging.INFO, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_the_fields_and_no_secret() -> None:
    rec = _record("connecting to postgresql://vigil:hunter2@db:5432/vigil", event="connect",
                  password="hunter2", auth_token="tok-1", key=SecretStr("k-2"), rows=3,
                  hook={"url": "https://u:p4ss@hooks.example/x", "secret": "s-3"})
    line = JsonFormatter().format(rec)
    data = json.loads(line)
    assert data["event"] == "connect" and data["rows"] == 3 and data["level"] == "info"
    assert data["message"] == "connecting to postgresql://vigil:***@db:5432/vigil"
    assert data["password"] == data["auth_token"] == data["key"] == "***"
    assert data["hook"] == {"url": "https://u:***@hooks.example/x", "secret": "***"}
    for secret in ("hunter2", "tok-1", "k-2", "p4ss", "s-3"):
        assert secret not in line
    text = TextFormatter().format(rec)
    assert "rows=3" in text and "hunter2" not in text and "tok-1" not in text


def test_one_line_per_scan_cycle_with_counts_and_durations(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'logs.db'}")
    import_dir(app.engine, small_dir(tmp_path / "data"))
    with caplog.at_level(logging.INFO, logger="vigil.daemon"):
        totals = scan_until_caught_up(app, deliver=False)
    cycles = [r for r in caplog.records if getattr(r, "event", None) == "scan_cycle"]
    assert len(cycles) == 1
    rec = cycles[0]
    assert rec.rows == totals["rows"] > 0 and rec.alerts == totals["alerts"]  # type: ignore[attr-defined]
    assert rec.batches >= 1 and rec.caught_up is True  # type: ignore[attr-defined]
    assert rec.seconds >= rec.scan_seconds > 0  # type: ignore[attr-defined]
    app.close()


def test_the_log_format_setting_switches_the_cli_to_json(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    app = make_app(db)
    import_dir(app.engine, small_dir(tmp_path / "data"))
    app.close()
    env = {**os.environ, "VIGIL_DATABASE_URL": db, "VIGIL_LOG_FORMAT": "json"}
    r = subprocess.run([sys.executable, "-m", "vigil.cli", "scan", "--once"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stderr.splitlines() if x.strip()]
    cycle = [x for x in lines if x.get("event") == "scan_cycle"]
    assert len(cycle) == 1 and cycle[0]["rows"] > 0 and "seconds" in cycle[0]
