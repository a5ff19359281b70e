"""The daemon: real APScheduler, real process, real SIGTERM."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

import vigil.daemon as daemon_mod
from alerts.store.models import AlertRow, OutboxRow, Run
from tests.app.helpers import make_app, small_dir, start_daemon, stop_daemon, wait_until
from vigil.importer import import_dir


def test_vigil_run_scans_delivers_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'daemon.db'}"
    app = make_app(db)
    import_dir(app.engine, small_dir(tmp_path / "data"))
    proc = start_daemon(tmp_path, db)
    try:
        def delivered() -> bool:
            with app.sessions() as s:
                return (s.scalar(select(func.count()).select_from(OutboxRow).where(
                    OutboxRow.status.in_(("sent", "delivered")))) or 0) > 0
        assert wait_until(delivered), "the daemon scanned and delivered"
    finally:
        out = stop_daemon(proc)
    assert "stopping: waiting for running jobs to finish" in out
    assert "vigil daemon stopped" in out
    assert "Traceback" not in out
    with app.sessions() as s:
        assert (s.scalar(select(func.count()).select_from(AlertRow)) or 0) > 0
        assert s.scalar(select(func.count()).select_from(Run).where(Run.job == "scan", Run.status == "ok"))
    app.close()


def test_an_overrun_is_logged_as_a_gap_and_the_next_run_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    db = f"sqlite:///{tmp_path / 'gap.db'}"
    app = make_app(db, daemon={"scan_every_seconds": 1, "deliver_every_seconds": 3600,
                               "escalate_every_seconds": 3600, "rules_reload_seconds": 3600,
                               "batch_rows": 4, "max_batches_per_run": 2})
    app.clock = lambda: datetime.now(UTC)  # the scheduler runs on real time
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False))
    real = daemon_mod.scan_until_caught_up

    def slow(a, **kw):  # type: ignore[no-untyped-def]
        out = real(a, **kw)
        time.sleep(2.5)  # longer than the interval: APScheduler must skip a run
        return out

    monkeypatch.setattr(daemon_mod, "scan_until_caught_up", slow)
    d = daemon_mod.Daemon(app)
    d.start()
    try:
        def gap_recorded() -> bool:
            with app.sessions() as s:
                return bool(s.scalar(select(func.count()).select_from(Run).where(Run.status == "gap")))
        assert wait_until(gap_recorded, 30)
        # each run reads at most 2 batches of 4 rows per table, so the backlog shrinks run by run
        def caught_up() -> bool:
            with app.sessions() as s:
                runs = s.scalars(select(Run).where(Run.job == "scan").order_by(Run.id.desc())).first()
                return runs is not None and sum((runs.detail or {}).get("rows", {}).values()) == 0
        assert wait_until(caught_up, 90)
    finally:
        d.scheduler.shutdown(wait=True)
    assert any("overran" in r.getMessage() for r in caplog.records)
    assert any("backlog remains" in r.getMessage() for r in caplog.records)
    with app.sessions() as s:
        alerts = s.scalar(select(func.count()).select_from(AlertRow))
    assert alerts and alerts >= 6  # every account's new-country and large-withdrawal alerts, nothing skipped
    app.close()
