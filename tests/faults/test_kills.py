"""kill -9 of the scanner and of delivery workers at random points, on PostgreSQL, against a clean
run (issue 14 points 5 and 9).

The processes are the real CLI (``vigil scan --once``, ``vigil deliver --once``) talking to the
real adapters and loopback providers.  ``VIGIL_FAULT_KILLS`` sets how many delivery workers are
killed (default 6; the figures in docs/operations.md come from 20), ``VIGIL_FAULT_SEED`` the
random seed (printed on failure).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from alerts.store.db import upgrade
from alerts.store.models import AlertRow, Cursor, Delivery, FindingRow, OutboxRow, Profile, Ticket
from tests.delivery.kit import account, alert
from tests.faults.cluster import wait_for
from tests.faults.providers import FakeApis, FaultRelay, channels_config

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("VIGIL_FAULT_KILLS", "6"))
SEED = int(os.environ.get("VIGIL_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
WEB = {"base_url": "https://alerts.exchange.example", "secret_key": "k" * 32}


def vigil(cfg: Path, *args: str) -> subprocess.Popen[str]:
    """The CLI in a child process; its output goes to a file next to the config (read by :func:`output`)."""
    with (cfg.parent / "vigil.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "vigil.cli", "--config", str(cfg), "--log-level", "WARNING",
                                 *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def output(cfg: Path) -> str:
    return (cfg.parent / "vigil.log").read_text(encoding="utf-8", errors="replace")


def write_config(path: Path, **settings: Any) -> Path:
    path.write_text(json.dumps(settings), encoding="utf-8")  # JSON is YAML
    return path


# -- delivery ---------------------------------------------------------------------------------
def seed_outbox(url: str, n: int) -> None:
    from alerts.store.db import make_engine, session_factory

    engine = make_engine(url)
    at = datetime.now(UTC) - timedelta(seconds=5)
    with session_factory(engine).begin() as s:
        for i in range(n):
            account(s, f"K{i:04d}", phone=f"+8210555{i:05d}", email=f"k{i}@example.com", push_token=f"tok-K{i:04d}")
            alert(s, i, account_id=f"K{i:04d}", channels=("sms", "push", "email"), now=at)
    engine.dispose()


@pytest.mark.timeout(900)  # real processes on a shared machine: minutes, not seconds
def test_killed_delivery_workers_never_send_a_message_twice(pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    apis, relay = FakeApis(delay=0.03), FaultRelay(mode="slow", delay=0.03).start()
    try:
        from tests.faults.providers import service_account

        upgrade(pg_url)
        seed_outbox(pg_url, 60)
        cfg = write_config(tmp_path / "vigil.yaml", database_url=pg_url, web=WEB,
                           channels=channels_config(apis, relay.port, service_account(tmp_path, f"{apis.url}/token")),
                           delivery={"lease_seconds": 2, "backoff_seconds": 60},
                           policy={"budgets": {}, "receipt_channels": []})
        kills = finished = 0
        while kills < KILLS:
            proc = vigil(cfg, "deliver", "--once")
            started = wait_for(_sending(apis, relay, proc), 120, 0.01)
            assert started, "the worker never began to send"
            time.sleep(rng.uniform(0.0, 0.8))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:
                finished += 1
            proc.wait(timeout=60)
            if finished > 3 * KILLS:
                break  # the outbox ran dry before enough kills; what was killed still counts
            if _left(pg_url) == 0:
                _reseed(pg_url, 30)  # keep the workers busy until every kill has happened
        for _ in range(4):  # the survivors: wait out the dead workers' leases, then drain
            time.sleep(2.5)
            vigil(cfg, "deliver", "--once").wait(timeout=300)
            if _left(pg_url) == 0:
                break
        assert "Traceback" not in output(cfg), output(cfg)[-3000:]
        verdict = _verdict(pg_url, apis, relay)
        print(f"\ndelivery kills (seed {SEED}): {kills} kill(s); " + json.dumps(verdict))
        assert verdict["left"] == 0 and verdict["in_flight"] == 0
        assert verdict["duplicates"] == 0, verdict
        assert verdict["received"] + verdict["lost_presumed"] == verdict["messages"]
        assert verdict["lost_silently"] == 0, verdict  # a missing message is always on record as unknown
    finally:
        apis.stop()
        relay.stop()


def _sending(apis: FakeApis, relay: FaultRelay, proc: subprocess.Popen[str]) -> Any:
    before = apis.total() + len(relay.data)
    return lambda: apis.total() + len(relay.data) > before or proc.poll() is not None


def _reseed(url: str, n: int) -> None:
    from alerts.store.db import make_engine, session_factory

    engine = make_engine(url)
    with session_factory(engine)() as s:
        start = s.scalar(select(func.count()).select_from(AlertRow)) or 0
    engine.dispose()
    at = datetime.now(UTC) - timedelta(seconds=5)
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        for i in range(start, start + n):
            account(s, f"K{i:04d}", phone=f"+8210555{i:05d}", email=f"k{i}@example.com", push_token=f"tok-K{i:04d}")
            alert(s, i, account_id=f"K{i:04d}", channels=("sms", "push", "email"), now=at)
    engine.dispose()


def _left(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as c:
        n = c.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status.in_(("pending", "retry", "held", "sending")))) or 0
    engine.dispose()
    return int(n)


def _verdict(url: str, apis: FakeApis, relay: FaultRelay) -> dict[str, Any]:
    """Every outbox row against what the providers received, keyed per recipient."""
    engine = create_engine(url)
    with engine.connect() as c:
        rows = c.execute(select(OutboxRow.id, OutboxRow.channel, OutboxRow.account_id, OutboxRow.status)).all()
        unknown = set(c.scalars(select(Delivery.outbox_id).where(Delivery.status == "unknown")))
        in_flight = c.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "in_flight"))
    engine.dispose()
    emails = relay.counts()
    got: Counter[str] = Counter()
    missing = []
    for oid, channel, acct, _status in rows:
        n = {"sms": apis.sms[f"+8210555{int(acct[1:]):05d}"], "push": apis.push[f"tok-{acct}"],
             "email": emails[f"<vigil.{oid}@exchange.example>"]}[channel]
        got[channel] += min(n, 1)
        if n == 0:
            missing.append(oid)
    dupes = sum(n - 1 for n in [*apis.sms.values(), *apis.push.values(), *emails.values()] if n > 1)
    return {"messages": len(rows), "received": sum(got.values()), "by_channel": dict(got), "duplicates": dupes,
            "left": sum(1 for r in rows if r[3] not in ("sent", "delivered")), "in_flight": in_flight,
            "unknown_outcomes": len(unknown), "lost_presumed": sum(1 for o in missing if o in unknown),
            "lost_silently": sum(1 for o in missing if o not in unknown)}


# -- scan ---------------------------------------------------------------------------------------
SCAN_KILLS = int(os.environ.get("VIGIL_FAULT_SCAN_KILLS", "4"))


def _state(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as c:
        out = {
            "alerts": sorted(c.scalars(select(AlertRow.id))),
            "outbox": sorted(c.scalars(select(OutboxRow.id))),
            "findings": sorted(c.scalars(select(FindingRow.id))),
            "tickets": c.scalar(select(func.count()).select_from(Ticket)),
            "cursors": sorted((s, json.dumps(st, sort_keys=True)) for s, st in c.execute(select(Cursor.source,
                                                                                                 Cursor.state))),
            "profiles": sorted((a, d, v) for a, d, v in c.execute(select(Profile.account_id, Profile.detector,
                                                                         Profile.version))),
        }
    engine.dispose()
    return out


@pytest.fixture
def scan_data(tmp_path: Path) -> Path:
    from vigil_lab import synth

    frames = synth.generate(seed=11, accounts=60, days=20)
    path = tmp_path / "data"
    synth.write_dir(frames, path)
    return path


@pytest.mark.timeout(900)  # real processes on a shared machine: minutes, not seconds
def test_a_killed_scanner_loses_and_doubles_nothing(pg_url: str, scan_data: Path, tmp_path: Path,
                                                   _postgres: Any) -> None:
    from alerts.store.db import make_engine
    from vigil.importer import import_dir

    rng = random.Random(SEED)
    clean_name, clean_url = _postgres.create()
    try:
        daemon = {"batch_rows": 400, "max_batches_per_run": 500}
        for url in (clean_url, pg_url):
            upgrade(url)
            engine = make_engine(url)
            import_dir(engine, scan_data)
            engine.dispose()
        clean_cfg = write_config(tmp_path / "clean.yaml", database_url=clean_url, web=WEB, daemon=daemon)
        assert vigil(clean_cfg, "scan", "--once").wait(timeout=600) == 0, output(clean_cfg)
        cfg = write_config(tmp_path / "killed.yaml", database_url=pg_url, web=WEB, daemon=daemon)
        kills = 0
        for _ in range(SCAN_KILLS):
            proc = vigil(cfg, "scan", "--once")
            time.sleep(rng.uniform(3.0, 9.0))  # start-up takes a few seconds; then batches commit
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            kills += 1
        assert vigil(cfg, "scan", "--once").wait(timeout=600) == 0, output(cfg)
        assert "Traceback" not in output(cfg), output(cfg)[-3000:]
        clean, killed = _state(clean_url), _state(pg_url)
        print(f"\nscan kills (seed {SEED}): {kills} kill(s); alerts {len(clean['alerts'])}, "
              f"outbox {len(clean['outbox'])}, findings {len(clean['findings'])}")
        assert clean["alerts"] and clean["outbox"]
        for key in clean:
            assert killed[key] == clean[key], f"{key} differs after {kills} kill(s) (seed {SEED})"
    finally:
        _postgres.drop(clean_name)
