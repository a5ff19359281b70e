"""Three delivery replicas, one provider rate (issue 12 point 4).

Three worker processes (``tests/delivery/ratelimit_worker.py``: the daemon's deliver job, the real
twilio SDK) drain one PostgreSQL outbox against a loopback Twilio API that notes when each request
arrives.  With the bucket shared -- a PostgreSQL row, or a Redis hash -- the provider never sees
more than the configured rate (plus the bucket's burst) in any one-second window, although each
replica alone would send that rate; every message goes out exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from alerts.store.db import make_engine, session_factory
from alerts.store.models import Base, Delivery, OutboxRow
from tests.delivery.kit import account, alert
from tests.delivery.test_ratelimit import redis_or_skip
from tests.notifiers.notify_support import ACCOUNT_SID, FROM, Recorded, Reply, loopback, twilio_message_json

REPO = Path(__file__).resolve().parents[2]
RATE, BURST = 8.0, 2.0  # per second; one replica alone would send all of it
MESSAGES = 48
WORKERS = 3
SLACK = 1.0  # seconds: a token is taken when its message is prepared, the request goes out a little later
GUARD = 180.0  # seconds: a guard against a hang, not a timing assertion


class Provider:
    """The loopback Twilio API: notes when each message request arrives, and its recipient."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[float] = []
        self.to: Counter[str] = Counter()

    def __call__(self, rec: Recorded) -> Reply:
        if not rec.path.endswith("/Messages.json"):
            return Reply(404, {"message": "not found"})
        form = {k: v[0] for k, v in parse_qs(rec.body.decode()).items()}
        with self.lock:
            self.arrivals.append(time.monotonic())
            self.to[form.get("To", "")] += 1
        return Reply(201, twilio_message_json(sid="SM" + uuid.uuid4().hex))

    def busiest_second(self) -> int:
        """The most requests in any one-second window (sliding, not calendar seconds)."""
        ts = sorted(self.arrivals)
        best, j = 0, 0
        for i, t in enumerate(ts):
            while ts[j] <= t - 1.0:
                j += 1
            best = max(best, i - j + 1)
        return best


def _settings(tmp: Path, db_url: str, api: str, policy: dict[str, Any]) -> Path:
    doc = {
        "database_url": db_url,
        "web": {"base_url": "https://alerts.exchange.example", "secret_key": "k" * 32},
        "channels": {"console": {"enabled": False},
                     "sms": {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": "t" * 32,
                             "from_number": FROM, "base_url": api}},
        "delivery": {"batch_size": 4, "concurrency": {"sms": 2}},
        "daemon": {"deliver_every_seconds": 1},
        "policy": {"budgets": {}, "receipt_channels": [],
                   "rates": {"sms": {"per_second": RATE, "burst": BURST}}, **policy},
    }
    path = tmp / "vigil.yaml"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")  # JSON is YAML
    return path


def _seed(db_url: str, n: int) -> None:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with session_factory(engine).begin() as s:
        for i in range(n):
            account(s, f"R{i}", phone=f"+8210888{i:05d}", email=None, push_token=None)
            alert(s, i, account_id=f"R{i}", channels=("sms",), now=now)
    engine.dispose()


def _replicas(tmp: Path, db_url: str, policy: dict[str, Any]) -> tuple[Provider, list[dict[str, Any]]]:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    provider = Provider()
    with loopback() as api:
        api.route("/2010-04-01/", provider)
        config = _settings(tmp, db_url, api.url, policy)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        logs = [tmp / f"r{i}.log" for i in range(WORKERS)]  # a file, not a pipe: a chatty log never blocks
        handles = [log.open("w") for log in logs]
        procs = [subprocess.Popen([sys.executable, "-m", "tests.delivery.ratelimit_worker", str(config), f"r{i}"],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=h, text=True)
                 for i, h in enumerate(handles)]
        try:
            for p, log in zip(procs, logs, strict=True):  # every replica is up before there is anything to send
                assert p.stdout is not None
                line = p.stdout.readline()
                assert line.strip() == "ready", (line, log.read_text()[-3000:])
            _seed(db_url, MESSAGES)
            outs = [p.communicate(timeout=GUARD)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for h in handles:
                h.close()
    reports = []
    for p, out, log in zip(procs, outs, logs, strict=True):
        assert p.returncode == 0, log.read_text()[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return provider, reports


def _check(provider: Provider, reports: list[dict[str, Any]], db_url: str, store: str) -> None:
    assert {r["limiter"] for r in reports} == {f"{'Database' if store == 'database' else 'Redis'}Limiter({store})"}
    # every message exactly once: at the provider, in the outbox, in the attempt rows
    assert len(provider.to) == MESSAGES and set(provider.to.values()) == {1}, provider.to.most_common(3)
    assert sum(r["sent"] for r in reports) == MESSAGES
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        rows = list(s.query(OutboxRow))
        assert len(rows) == MESSAGES and {r.status for r in rows} == {"sent"} and {r.attempts for r in rows} == {1}
        assert Counter(d.status for d in s.query(Delivery)) == {"sent": MESSAGES}
    engine.dispose()
    # the replicas really shared the work, and the rate held across them
    assert sum(1 for r in reports if r["sent"] > 0) >= 2, reports
    assert sum(r["throttled"] for r in reports) > 0, reports  # the bucket ran dry: the limit was in play
    limit = BURST + RATE * (1.0 + SLACK)
    assert provider.busiest_second() <= limit, (provider.busiest_second(), reports)


@pytest.mark.slow
def test_three_replicas_share_the_providers_rate_through_postgresql(pg_url: str, tmp_path: Path) -> None:
    provider, reports = _replicas(tmp_path, pg_url, {"rate_store": "database"})
    _check(provider, reports, pg_url, "database")


@pytest.mark.slow
def test_three_replicas_share_the_providers_rate_through_redis(pg_url: str, tmp_path: Path) -> None:
    url = redis_or_skip()
    prefix = f"vigil-test:{uuid.uuid4().hex}:"
    try:
        provider, reports = _replicas(tmp_path, pg_url, {"redis_url": url, "redis_prefix": prefix})
        _check(provider, reports, pg_url, "redis")
    finally:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
