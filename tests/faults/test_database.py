"""A database stopped and started again, and one frozen (SIGSTOP) and thawed, under ``vigil run``
(issue 14 points 8 and 9).

The database is a private throw-away cluster (``cluster``), never the shared test server.  What
holds: the daemon keeps running, every failed run is written to ``vigil_runs`` (error class and
message) once the database answers again, rows that arrive after the outage are scanned and
delivered, the alerts are exactly those of a clean run, and SIGTERM still stops it cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, insert, select

from alerts.store.db import make_engine, upgrade
from alerts.store.models import SOURCE_MODELS, AlertRow, OutboxRow, Run
from tests.app.helpers import T0, iso, small_dir
from tests.faults.cluster import PrivateCluster, wait_for
from vigil.importer import import_dir

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_SECONDS = 5.0
EXTRA = {"event_id": "A1-late", "account_id": "A1", "ts": iso(T0 + timedelta(days=6, hours=5)), "success": "true",
         "country": "DE", "city": "Berlin", "ip": "85.1.1.1", "device_id": "evil-2"}


def _start_daemon(url: str, tmp: Path) -> subprocess.Popen[bytes]:
    """``vigil run`` with its output in ``tmp/daemon.log`` (a pipe nobody reads would fill and stall it)."""
    cfg = tmp / "vigil.yaml"
    cfg.write_text(json.dumps({
        "database_url": url, "web": {"base_url": "https://alerts.exchange.example", "secret_key": "k" * 32},
        "daemon": {"scan_every_seconds": 1, "deliver_every_seconds": 1, "escalate_every_seconds": 1,
                   "rules_reload_seconds": 5}}), encoding="utf-8")
    with (tmp / "daemon.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "vigil.cli", "--config", str(cfg), "run"], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _count(url: str, q: Any) -> int:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as c:
            return int(c.scalar(q) or 0)
    except Exception:  # the database is away: nothing to count yet
        return -1
    finally:
        engine.dispose()


def _clean_alerts(data: Path, tmp: Path) -> set[str]:
    """The alerts a clean, uninterrupted scan of the same rows produces (SQLite)."""
    from tests.app.helpers import make_app
    from vigil.daemon import scan_until_caught_up

    app = make_app(f"sqlite:///{tmp / 'clean.db'}", clock=lambda: datetime.now(UTC))
    import_dir(app.engine, data)
    with app.engine.begin() as c:
        c.execute(insert(SOURCE_MODELS["logins"].__table__), [EXTRA])  # type: ignore[attr-defined]
    scan_until_caught_up(app)
    with app.sessions() as s:
        ids = set(s.scalars(select(AlertRow.id)))
    app.close()
    return ids


@pytest.mark.timeout(900)  # real processes on a shared machine: minutes, not seconds
@pytest.mark.parametrize("fault", ["stop", "freeze"])
def test_the_daemon_rides_out_a_database_outage(cluster: PrivateCluster, tmp_path: Path, fault: str) -> None:
    url = cluster.create_database(f"outage_{fault}")
    upgrade(url)
    data = small_dir(tmp_path / "data")
    engine = make_engine(url)
    import_dir(engine, data)
    engine.dispose()
    proc = _start_daemon(url, tmp_path)
    try:
        sent = select(func.count()).select_from(OutboxRow).where(OutboxRow.status.in_(("sent", "delivered")))
        assert wait_for(lambda: _count(url, sent) > 0, 120), "the daemon scanned and delivered before the outage"
        t_fault = datetime.now(UTC)
        if fault == "stop":
            cluster.stop()
            time.sleep(OUTAGE_SECONDS)
            cluster.start()
        else:
            cluster.freeze()
            time.sleep(OUTAGE_SECONDS)
            cluster.thaw()
        back = time.monotonic()
        engine = make_engine(url)
        with engine.begin() as c:  # a suspicious sign-in that arrives after the outage
            c.execute(insert(SOURCE_MODELS["logins"].__table__), [EXTRA])  # type: ignore[attr-defined]
        engine.dispose()
        late = (select(func.count()).select_from(OutboxRow).join(AlertRow, OutboxRow.alert_id == AlertRow.id)
                .where(AlertRow.created_at > t_fault, OutboxRow.status.in_(("sent", "delivered"))))
        assert wait_for(lambda: _count(url, late) > 0, 120), "rows that arrived after the outage were delivered"
        recovery = time.monotonic() - back
        if fault == "stop":  # failed runs were kept in memory and written once the database answered
            failed = select(func.count()).select_from(Run).where(Run.status == "error")
            assert wait_for(lambda: _count(url, failed) > 0, 30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = (tmp_path / "daemon.log").read_text(encoding="utf-8", errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    engine = make_engine(url)
    with engine.connect() as c:
        alerts = set(c.scalars(select(AlertRow.id)))
        errors = [(r.job, r.detail) for r in c.execute(select(Run.job, Run.detail).where(Run.status == "error"))]
        stuck = c.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "sending"))
    engine.dispose()
    print(f"\n{fault}: {OUTAGE_SECONDS:.0f} s outage; a row inserted after it was delivered {recovery:.1f} s later; "
          f"{len(errors)} failed run(s) on record: {sorted({(j, d.get('error_class')) for j, d in errors})}")
    assert alerts == _clean_alerts(data, tmp_path)  # nothing lost, nothing doubled
    assert stuck == 0
    if fault == "stop":
        assert errors and all(d.get("error_class") and d.get("error") for _, d in errors)
        assert {"OperationalError"} & {d["error_class"] for _, d in errors}
