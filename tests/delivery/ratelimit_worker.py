"""One delivery replica for tests/delivery/test_ratelimit_replicas.py, in its own process.

    python -m tests.delivery.ratelimit_worker SETTINGS.yaml NAME

Bootstraps the application from the settings file (the real SMS channel: the twilio SDK against
the test's loopback provider), prints ``ready``, then runs the daemon's deliver job (pump mode,
the same code as ``vigil run``) until the outbox has had nothing left to send for a second, and
prints its report as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

from sqlalchemy import func, select

from alerts.outbox import READY, OutboxStatus
from alerts.store.models import OutboxRow
from vigil.bootstrap import bootstrap
from vigil.daemon import Daemon
from vigil.settings import load_settings

DEADLINE = 120.0  # seconds: a guard against a hang, not a timing assertion


def _left(app: object) -> int:
    with app.sessions() as s:  # type: ignore[attr-defined]
        q = select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status.in_([*READY, OutboxStatus.SENDING.value]))
        return int(s.execute(q).scalar_one())


def main(path: str, name: str) -> None:
    app = bootstrap(load_settings(path), migrate=False)
    daemon = Daemon(app, worker=name)
    sent = throttled = claimed = 0
    print("ready", flush=True)
    started = time.monotonic()
    while _left(app) == 0 and time.monotonic() - started < DEADLINE:  # the test seeds after all are ready
        time.sleep(0.02)
    quiet_since: float | None = None
    while time.monotonic() - started < DEADLINE:
        rep = daemon._deliver()
        sent += rep.get("sent", 0)
        throttled += rep.get("throttled", 0)
        claimed += rep.get("claimed_this_run", 0)
        if _left(app) == 0 and daemon.deliverer.idle():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 1.0:
                break
        else:
            quiet_since = None
        time.sleep(0.01)
    daemon.deliverer.close()
    print(json.dumps({"name": name, "sent": sent, "throttled": throttled, "claimed": claimed,
                      "limiter": repr(daemon.deliverer.limiter)}), flush=True)
    app.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
