"""Three ``vigil run`` replicas sharing account shards on one PostgreSQL database; the one holding
the cross-account shard is killed with SIGKILL mid-stream (issue 12 point 3).

The survivors take its shards over once its leases run out (``scan.lease_seconds: 3`` here) and
must leave exactly what one scanner leaves on the same data -- alerts, findings, outbox rows,
tickets, profiles -- none missing, none doubled, and every outbox message reaches its provider
once (real adapters against the loopback providers of ``tests/faults/providers.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from alerts.store.db import upgrade
from alerts.store.models import AlertRow, FindingRow, OutboxRow, Profile, Ticket
from tests.app.test_shards import plant_stuffing
from tests.faults.cluster import wait_for
from tests.faults.providers import FakeApis, FaultRelay, channels_config, service_account
from tests.faults.test_kills import WEB, output, vigil, write_config

SHARDS = 8
TABLES = ("logins", "transactions", "positions", "security_events")


def _state(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as c:
        out = {
            "alerts": sorted(c.scalars(select(AlertRow.id))),
            "outbox": sorted(c.scalars(select(OutboxRow.id))),
            "findings": sorted(c.scalars(select(FindingRow.id))),
            "tickets": c.scalar(select(func.count()).select_from(Ticket)),
            "profiles": sorted((a, d, v) for a, d, v in c.execute(select(Profile.account_id, Profile.detector,
                                                                         Profile.version))),
        }
    engine.dispose()
    return out


def _caught_up(url: str) -> bool:
    """Every shard's cursor (and the cross-account shard's) stands at the newest row of each table."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            cursors = {s: st for s, st in c.execute(text("SELECT source, state FROM vigil_cursors"))}
            for t in TABLES:
                newest = c.scalar(text(f"SELECT max(ingest_seq) FROM {t}"))
                if newest is None:
                    continue
                names = [f"sql:{t}#shard{i}of{SHARDS}" for i in range(SHARDS)]
                if t == "logins":
                    names.append("sql:logins#cross")
                if any(int((cursors.get(n) or {}).get("pos", 0)) < newest for n in names):
                    return False
            pending = c.scalar(select(func.count()).select_from(OutboxRow).where(
                OutboxRow.status.in_(("pending", "retry", "held", "sending"))))
            return pending == 0
    finally:
        engine.dispose()


def _unfinished_of(url: str, owner: str) -> list[int]:
    """The shards ``owner`` holds whose logins cursor is short of the newest row: work a survivor must finish."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            newest = c.scalar(text("SELECT max(ingest_seq) FROM logins"))
            out = []
            for shard in c.scalars(text("SELECT shard FROM vigil_shard_leases WHERE owner = :o"), {"o": owner}):
                name = "sql:logins#cross" if shard < 0 else f"sql:logins#shard{shard}of{SHARDS}"
                state = c.scalar(text("SELECT state FROM vigil_cursors WHERE source = :n"), {"n": name}) or {}
                if int(state.get("pos", 0)) < newest:
                    out.append(int(shard))
            return out
    finally:
        engine.dispose()


def _cross_owner(url: str) -> int | None:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            owner = c.scalar(text("SELECT owner FROM vigil_shard_leases WHERE shard = -1 AND expires_at > now()"))
            alerts = c.scalar(select(func.count()).select_from(AlertRow))
    except Exception:  # the tables are not there yet
        return None
    finally:
        engine.dispose()
    return int(owner.rsplit(":", 1)[1]) if owner and alerts else None


def _victim_name(url: str, pid: int) -> str:
    engine = create_engine(url)
    with engine.connect() as c:
        name = c.scalar(text("SELECT owner FROM vigil_shard_leases WHERE shard = -1"))
    engine.dispose()
    assert name is not None and name.endswith(f":{pid}")
    return str(name)


@pytest.mark.timeout(900)  # real processes on a shared machine: minutes, not seconds
def test_three_replicas_one_killed_leave_the_alerts_of_one_scanner(pg_url: str, tmp_path: Path,
                                                                    _postgres: Any) -> None:
    from alerts.store.db import make_engine
    from vigil.importer import import_dir
    from vigil_lab import synth

    data = tmp_path / "data"
    synth.write_dir(plant_stuffing(synth.generate(seed=11, accounts=60, days=20)), data)
    clean_name, clean_url = _postgres.create()
    apis, relay = FakeApis(), FaultRelay().start()
    procs: list[subprocess.Popen[str]] = []
    try:
        for url in (clean_url, pg_url):
            upgrade(url)
            engine = make_engine(url)
            import_dir(engine, data)
            engine.dispose()
        daemon = {"batch_rows": 150, "max_batches_per_run": 5, "scan_every_seconds": 1, "deliver_every_seconds": 1}
        clean_cfg = write_config(tmp_path / "clean.yaml", database_url=clean_url, web=WEB,
                                 daemon={"batch_rows": 150, "max_batches_per_run": 5000})
        assert vigil(clean_cfg, "scan", "--once").wait(timeout=600) == 0, output(clean_cfg)
        clean = _state(clean_url)
        assert clean["alerts"] and clean["outbox"]
        engine = create_engine(clean_url)
        with engine.connect() as c:  # the cross-account shard has work to lose if its takeover failed
            assert c.scalar(select(func.count()).select_from(FindingRow).where(
                FindingRow.detector == "credential_stuffing"))
        engine.dispose()
        cfg = write_config(tmp_path / "replicas.yaml", database_url=pg_url, web=WEB, daemon=daemon,
                           scan={"shards": SHARDS, "lease_seconds": 3},
                           channels=channels_config(apis, relay.port, service_account(tmp_path, f"{apis.url}/token")),
                           delivery={"lease_seconds": 2}, policy={"budgets": {}, "receipt_channels": []})
        procs = [vigil(cfg, "run") for _ in range(3)]
        assert wait_for(lambda: _cross_owner(pg_url) is not None, 300, 0.2), output(cfg)[-3000:]
        victim = _cross_owner(pg_url)  # the elected replica: its cross-account shard must move too
        assert victim in [p.pid for p in procs]
        assert not _caught_up(pg_url), "the replicas finished before the kill: make the input bigger"
        dead = next(p for p in procs if p.pid == victim)
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=60)
        owner = _victim_name(pg_url, victim)
        unfinished = _unfinished_of(pg_url, owner)
        print(f"\nkilled {owner}; its shards still short of the newest login: {unfinished}")
        assert unfinished, "the victim had finished its shards before the kill: make the input bigger"
        assert wait_for(lambda: _caught_up(pg_url), 600, 0.5), output(cfg)[-3000:]
        time.sleep(2)  # a last round of every job: anything still to come would show now
        survivors = [p for p in procs if p is not dead]
        for p in survivors:
            assert p.poll() is None, output(cfg)[-3000:]
            p.send_signal(signal.SIGTERM)
        for p in survivors:
            assert p.wait(timeout=120) == 0, output(cfg)[-3000:]
        assert "Traceback" not in output(cfg), output(cfg)[-3000:]
        sharded = _state(pg_url)
        for key in clean:
            assert sharded[key] == clean[key], f"{key} differs from one scanner's"
        emails = relay.counts()
        engine = create_engine(pg_url)
        with engine.connect() as c:
            by_channel = dict(c.execute(select(OutboxRow.channel, func.count()).where(
                OutboxRow.status.in_(("sent", "delivered"))).group_by(OutboxRow.channel)).all())
            failed = c.execute(select(OutboxRow.channel, OutboxRow.account_id, OutboxRow.last_error).where(
                OutboxRow.status.not_in(("sent", "delivered")))).all()
            status = dict(c.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all())
            takeover = c.scalar(text("SELECT count(DISTINCT owner) FROM vigil_shard_leases"))
        engine.dispose()
        received = {"sms": sum(apis.sms.values()), "push": sum(apis.push.values()), "email": sum(emails.values())}
        print("\nreplicas: " + json.dumps({"alerts": len(clean["alerts"]), "outbox": by_channel,
                                          "status": status, "received": received,
                                          "not_sent": [list(f) for f in failed]}))
        assert set(status) <= {"sent", "delivered", "failed"}, status
        assert all(str(err).startswith("account has no ") for _ch, _acct, err in failed), failed  # no recipient
        assert all(n == 1 for n in emails.values())
        assert received == {ch: by_channel.get(ch, 0) for ch in received}  # each message once, none lost
        assert takeover is not None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
        apis.stop()
        relay.stop()
        _postgres.drop(clean_name)
