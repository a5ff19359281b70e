"""Settings: the YAML file and VIGIL_* variables through pydantic-settings sources, errors at path:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.errors import ConfigError
from vigil.settings import load_settings


def test_environment_wins_over_the_file_and_sections_merge_key_by_key(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("database_url: sqlite:///from-file.db\nweb:\n  port: 8100\n  base_url: https://file.example\n"
                   "delivery: {max_attempts: 3}\n")
    monkeypatch.setenv("VIGIL_WEB__PORT", "8200")
    monkeypatch.setenv("VIGIL_DELIVERY__LEASE_SECONDS", "30")
    s = load_settings(cfg, default_locale="ko")
    assert s.database_url == "sqlite:///from-file.db"
    assert (s.web.port, s.web.base_url) == (8200, "https://file.example")  # env wins, the file's sibling stays
    assert (s.delivery.max_attempts, s.delivery.lease_seconds) == (3, 30)
    assert s.default_locale == "ko"  # the caller's overrides win over both


def test_every_problem_at_once_at_its_place_in_the_file_or_the_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("databse_url: sqlite:///x.db\nweb:\n  port: eighty\ndaemon:\n  scan_every_seconds: 0\n")
    monkeypatch.setenv("VIGIL_DELIVERY__MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    lines = str(e.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert f"  {cfg}:1:1: databse_url: unknown setting 'databse_url'. Did you mean 'database_url'?" in lines
    assert f"  {cfg}:3:9: web.port: expected a whole number, got 'eighty'" in lines
    assert f"  {cfg}:5:23: daemon.scan_every_seconds: must be >= 1, got 0" in lines
    assert "  environment: delivery.max_attempts: expected a whole number, got 'many'" in lines
    assert "Input should" not in str(e.value)
    monkeypatch.setenv("VIGIL_WEB__PORT", "ninety")  # the file has web.port too: the bad value is the variable's
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "  environment: web.port: expected a whole number, got 'ninety'" in str(e.value).splitlines()


def test_a_broken_file_is_one_line_with_its_position(tmp_path: Path) -> None:
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("web:\n  port: [8000\n")
    with pytest.raises(ConfigError, match=rf"^{cfg}:3:1: the '\[' opened at line 2, column 9 is not closed$"):
        load_settings(cfg)
    cfg.write_text("- a list\n")
    with pytest.raises(ConfigError, match=rf"^{cfg}:1:1: the top level must be a mapping of settings$"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "missing.yaml")
