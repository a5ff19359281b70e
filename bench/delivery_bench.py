"""Outbox delivery throughput, the backlog under a steady feed, and end-to-end alert latency, on
PostgreSQL, to loopback fakes.

    python bench/delivery_bench.py --skip-latency --skip-backlog            # throughput, 1 and 2 workers
    python bench/delivery_bench.py --skip-throughput --skip-latency --feed-rate 200 --feed-seconds 180
    python bench/delivery_bench.py --skip-throughput --skip-backlog --rate 20 --duration 30

The providers are loopback fakes driven through the real SDKs: Twilio's Messages API (the
``twilio`` SDK with ``base_url``), FCM v1 (``firebase-admin`` with its endpoint overridden and a
fake credential, or a service-account key whose token endpoint is the fake) and SMTP
(``aiosmtpd``, the stdlib client).  ``--provider-ms`` adds a delay to every provider answer (a
real API answers in tens of milliseconds; the default 0 measures Vigil's own cost).  Each worker
is its own process with its own connection pool, like a daemon replica; the fakes run in this
process.

1. **Throughput**: ``--alerts`` alerts x 3 channels of pending outbox rows; N worker processes
   drain them (``Deliverer.drain``: what ``vigil deliver --once`` runs, per-channel senders);
   messages per second = messages handed to the fakes / wall time.  Checks every outbox row was
   sent exactly once.
2. **Backlog**: the real daemon (``vigil run``, a child process) under a steady feed of
   ``--feed-rate`` source rows a second for ``--feed-seconds``; ``--alert-share`` of them are
   sign-ins from a new country (an alert, three messages), the rest ordinary sign-ins.  The
   outbox depth (pending + retry + held) and the oldest waiting message's age are sampled every
   5 s; the figure is the depth at the end of the feed and 30 s later.
3. **Latency**: accounts with a login history are scanned once; then foreign logins are inserted
   at ``--rate`` per second for ``--duration`` seconds, each committed on its own, while a scanner
   process scans every ``--scan-interval`` seconds (the daemon's ``scan_every_seconds``) and the
   workers poll every ``--poll`` seconds.  Latency = the Twilio fake receiving the SMS minus the
   commit of the login row; p50 / p99 / max.

Needs a PostgreSQL server (``--pg-url``, default ``VIGIL_TEST_PG_URL`` or the test default); a
database is created per part and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ACCOUNT_SID = "AC" + "0" * 32


# -- loopback providers ---------------------------------------------------------------------------
class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds every provider takes to answer
        self.lock = threading.Lock()
        self.sms: list[tuple[float, str]] = []  # (arrival, To)
        self.push = 0
        self.email = 0


def fake_http(rec: Recorder) -> ThreadingHTTPServer:
    """Twilio Messages.json (201 + a message) and FCM v1 messages:send (200 + a name)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if rec.delay:
                time.sleep(rec.delay)
            if self.path.endswith("/Messages.json"):
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                with rec.lock:
                    rec.sms.append((arrived, form.get("To", "")))
                out = {"sid": "SM" + uuid.uuid4().hex, "status": "queued", "to": form.get("To"),
                       "from": form.get("From"), "body": form.get("Body"), "account_sid": ACCOUNT_SID,
                       "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01"}
                self._reply(201, out)
            elif self.path.endswith("/token"):  # Google's OAuth token endpoint (a service-account key)
                self._reply(200, {"access_token": "ya29.bench", "expires_in": 3600, "token_type": "Bearer"})
            elif self.path.endswith("/messages:send"):
                with rec.lock:
                    rec.push += 1
                    n = rec.push
                self._reply(200, {"name": f"projects/demo-bench/messages/{n}"})
            else:
                self._reply(404, {"message": "not found"})

        def _reply(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def fake_smtp(rec: Recorder) -> Any:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with rec.lock:
                rec.email += 1
            if rec.delay:
                await asyncio.sleep(rec.delay)
            return "250 OK"

    with socket.socket() as s:  # aiosmtpd 1.4.6 cannot take port 0
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl


def fake_credential() -> Any:
    """firebase-admin's own test pattern: a credential that never touches the network."""
    import google.auth.credentials
    from firebase_admin import credentials

    class Google(google.auth.credentials.Credentials):
        def refresh(self, request: Any) -> None:
            self.token = "bench-token"

    class Cred(credentials.Base):
        project_id = "demo-bench"

        def get_credential(self) -> Any:
            return Google()

    return Cred()


def channel_config(http_port: int, smtp_port: int) -> dict[str, Any]:
    return {
        "console": {"enabled": False},
        "sms": {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": "t" * 32,
                "from_number": "+15017122661", "base_url": f"http://127.0.0.1:{http_port}"},
        "push": {"enabled": True, "project_id": "demo-bench",
                 "endpoint": f"http://127.0.0.1:{http_port}/v1/projects/{{project}}/messages:send"},
        "email": {"enabled": True, "host": "127.0.0.1", "port": smtp_port},
    }


# -- databases ------------------------------------------------------------------------------------
def create_db(base: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"vigil_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_db(base: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def settings_for(url: str, **kw: Any) -> Any:
    from vigil.settings import load_settings

    return load_settings(None, database_url=url, web={"base_url": "https://alerts.exchange.example",
                                                      "secret_key": "b" * 32}, **kw)


# -- workers (child processes) --------------------------------------------------------------------
def deliver_worker(url: str, ports: tuple[int, int], name: str, go: Any, stop: Any, poll: float,
                   out: Any) -> None:
    """Drain the outbox; with ``stop`` None, until nothing is left, else until ``stop`` is set."""
    from alerts.store.db import make_engine, session_factory
    from delivery.deliver import Deliverer
    from delivery.policy import PolicySettings
    from notifiers.registry import build_channels
    from notifiers.render import render

    chans = build_channels(channel_config(*ports), seams={"push": {"credential": fake_credential()}})
    engine = make_engine(url, pool_size=8)
    d = Deliverer(session_factory(engine), settings_for(url), chans, render, worker=name,
                  policy=PolicySettings(budgets={}, receipt_channels=[]))
    d.run_once(datetime.now(UTC) - timedelta(days=1))  # warm up: imports, templates, connections
    go.wait()
    sent = 0
    while True:
        rep = d.drain(lambda: datetime.now(UTC))
        sent += rep.sent
        if stop is None or stop.is_set():
            break
        time.sleep(poll)
    out.put((name, sent, time.time()))
    d.close()
    for ch in chans.values():
        ch.close()
    engine.dispose()


def scan_worker(url: str, go: Any, stop: Any, interval: float, out: Any) -> None:
    from vigil.bootstrap import bootstrap
    from vigil.daemon import scan_until_caught_up

    app = bootstrap(settings_for(url), migrate=False)
    go.wait()
    runs = 0
    while not stop.is_set():
        t = time.perf_counter()
        scan_until_caught_up(app)
        runs += 1
        time.sleep(max(0.0, interval - (time.perf_counter() - t)))
    out.put(("scanner", runs, time.time()))
    app.close()


# -- part 1: throughput ---------------------------------------------------------------------------
def seed_outbox(url: str, alerts: int) -> int:
    from alerts.outbox import enqueue_notifications
    from alerts.store.db import make_engine, session_factory
    from alerts.store.models import AccountRow, AlertRow

    engine = make_engine(url)
    sessions = session_factory(engine)
    now = datetime.now(UTC) - timedelta(seconds=1)
    chans = ["push", "sms", "email"]
    made = 0
    with sessions.begin() as s:
        for i in range(alerts):
            acct = f"B{i:06d}"
            s.add(AccountRow(account_id=acct, phone=f"+8210{i:08d}", email=f"{acct.lower()}@example.com",
                             push_token=f"tok-{acct}", locale=("en", "ko", "ja", "zh-CN", "zh-TW")[i % 5],
                             timezone="Asia/Seoul", status="active", updated_at=now))
            a = AlertRow(id=f"a_bench_{i:06d}", rule_id="login-new-country", detector="new_location",
                         account_id=acct, severity="high", status="new", ts=now, finding_ids=[], event_ids=[],
                         evidence={"kind": "country", "country": "BR", "city": "Sao Paulo"},
                         template="new_location", channels=chans, confirm=True, sms_code="4821",
                         expires_at=now + timedelta(minutes=30), created_at=now, updated_at=now,
                         plan={"notify": {"channels": chans, "template": "new_location", "confirm": True,
                                          "expires_s": 1800, "strategy": "all"}})
            s.add(a)
            s.flush()
            made += enqueue_notifications(s, a, now=now)
    engine.dispose()
    return made


def throughput(base: str, alerts: int, workers: int, ports: tuple[int, int], rec: Recorder) -> dict[str, Any]:
    from sqlalchemy import func, select

    from alerts.store.db import make_engine, upgrade
    from alerts.store.models import Delivery, OutboxRow

    name, url = create_db(base)
    try:
        upgrade(url)
        rows = seed_outbox(url, alerts)
        before = (len(rec.sms), rec.push, rec.email)
        ctx = mp.get_context("spawn")
        go, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=deliver_worker, args=(url, ports, f"w{i}", go, None, 0.0, out))
                 for i in range(workers)]
        for p in procs:
            p.start()
        time.sleep(2.0 + workers)  # let the workers import and warm up before the clock starts
        t0 = time.time()
        go.set()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        elapsed = max(r[2] for r in results) - t0
        got = (len(rec.sms) - before[0], rec.push - before[1], rec.email - before[2])
        engine = make_engine(url)
        with engine.connect() as c:
            sent = c.execute(select(func.count()).select_from(OutboxRow)
                             .where(OutboxRow.sent_at.is_not(None))).scalar()
            attempts = c.execute(select(func.count()).select_from(Delivery)).scalar()
            twice = select(Delivery.outbox_id).group_by(Delivery.outbox_id).having(func.count() > 1)
            dupes = c.execute(select(func.count()).select_from(twice.subquery())).scalar()
        engine.dispose()
        return {"workers": workers, "messages": rows, "provider_requests": sum(got), "by_channel": got,
                "outbox_sent": sent, "delivery_rows": attempts, "rows_sent_twice": dupes,
                "seconds": round(elapsed, 2), "messages_per_second": round(sum(got) / elapsed, 1),
                "per_worker": {r[0]: r[1] for r in results}}
    finally:
        drop_db(base, name)


# -- part 2: backlog under a steady feed, the real daemon ----------------------------------------------
def service_account(tmp: Path, token_uri: str) -> Path:
    """A real service-account key (fresh RSA key) whose token endpoint is the loopback fake."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp / "service-account.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "demo-bench", "private_key_id": "k1",
                                "private_key": pem, "client_email": "bench@demo-bench.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": token_uri}), encoding="utf-8")
    return path


def _depth(engine: Any, now: datetime) -> tuple[int, float]:
    from sqlalchemy import func, select

    from alerts.outbox import READY
    from alerts.store.models import OutboxRow

    with engine.connect() as c:
        n, oldest = c.execute(select(func.count(), func.min(OutboxRow.created_at))
                              .where(OutboxRow.status.in_(READY))).one()
    return int(n or 0), (now - oldest).total_seconds() if oldest is not None else 0.0


def _unscanned(engine: Any) -> int:
    """Source rows (logins) the scanner has not read yet: the lag upstream of the outbox."""
    from sqlalchemy import func, select

    from alerts.store.models import SOURCE_MODELS, Cursor

    logins: Any = SOURCE_MODELS["logins"].__table__  # type: ignore[attr-defined]
    with engine.connect() as c:
        top = c.scalar(select(func.max(logins.c.ingest_seq))) or 0
        state = c.scalar(select(Cursor.state).where(Cursor.source.like("%:logins"))) or {}  # "engine:logins"
    return max(0, int(top) - int(state.get("pos", 0)))


def backlog(base: str, rate: float, seconds: float, share: float, ports: tuple[int, int], rec: Recorder,
            tmp: Path) -> dict[str, Any]:
    import signal
    import subprocess

    from sqlalchemy import insert

    from alerts.store.db import make_engine
    from alerts.store.models import SOURCE_MODELS
    from vigil.bootstrap import bootstrap
    from vigil.daemon import scan_until_caught_up

    total = int(rate * seconds)
    suspicious = max(1, int(total * share))
    name, url = create_db(base)
    try:
        app = bootstrap(settings_for(url))  # migrates
        start = datetime.now(UTC) - timedelta(days=20)
        accts: Any = SOURCE_MODELS["accounts"].__table__  # type: ignore[attr-defined]
        logins: Any = SOURCE_MODELS["logins"].__table__  # type: ignore[attr-defined]
        with app.engine.begin() as c:
            c.execute(insert(accts), [{"account_id": f"F{i:06d}", "locale": "en", "timezone": "UTC",
                                       "phone": f"+8210{i:08d}", "email": f"f{i}@example.com",
                                       "push_token": f"tok{i}"} for i in range(suspicious)])
            c.execute(insert(logins), [{"event_id": f"F{i:06d}-h{k}", "account_id": f"F{i:06d}",
                                        "ts": (start + timedelta(days=k)).isoformat(), "success": "true",
                                        "country": "KR", "city": "Seoul", "ip": "10.0.0.1",
                                        "device_id": f"d{i}"} for i in range(suspicious) for k in range(5)])
        scan_until_caught_up(app)  # the baseline: profiles learned, no alerts
        app.close()
        http_port, smtp_port = ports
        cfg = tmp / "backlog.yaml"
        chans = channel_config(http_port, smtp_port)
        chans["push"] = {"enabled": True, "project_id": "demo-bench",
                         "credentials_file": str(service_account(tmp, f"http://127.0.0.1:{http_port}/token")),
                         "endpoint": f"http://127.0.0.1:{http_port}/v1/projects/{{project}}/messages:send"}
        cfg.write_text(json.dumps({
            "database_url": url, "web": {"base_url": "https://alerts.exchange.example", "secret_key": "b" * 32},
            "channels": chans, "policy": {"budgets": {}, "receipt_channels": []},
            "daemon": {"scan_every_seconds": 1, "deliver_every_seconds": 1, "escalate_every_seconds": 60,
                       "rules_reload_seconds": 600}}), encoding="utf-8")
        log = (tmp / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "--config", str(cfg), "--log-level", "WARNING",
                                 "run"], stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
        engine = make_engine(url)
        time.sleep(8.0)  # the daemon starts up
        received0 = len(rec.sms) + rec.push + rec.email
        every = max(1, int(1 / share)) if share > 0 else total + 1
        samples: list[dict[str, Any]] = []
        t0 = time.time()
        next_sample = t0 + 5
        k = 0
        tick = 0.05  # every 50 ms, the rows due by then in one transaction: a steady rate the feeder can keep
        i = 0
        while i < total:
            time.sleep(max(0.0, t0 + i / rate - time.time()))
            due = min(total, max(i + 1, int((time.time() - t0 + tick) * rate)))
            rows = []
            for j in range(i, due):
                acct = k % suspicious
                row = {"event_id": f"feed-{j:07d}", "account_id": f"F{acct:06d}",
                       "ts": datetime.now(UTC).isoformat(), "success": "true", "country": "KR", "city": "Seoul",
                       "ip": "10.0.0.1", "device_id": f"d{acct}"}
                if j % every == 0 and k < suspicious:
                    row.update(country="BR", city="Sao Paulo", ip="200.1.1.1", device_id="evil")
                    k += 1
                rows.append(row)
            with engine.begin() as c:
                c.execute(insert(logins), rows)
            i = due
            if time.time() >= next_sample:
                depth, age = _depth(engine, datetime.now(UTC))
                samples.append({"t": round(time.time() - t0), "depth": depth, "oldest_s": round(age, 1),
                                "unscanned_rows": _unscanned(engine),
                                "received": len(rec.sms) + rec.push + rec.email - received0})
                next_sample += 5
        fed = time.time() - t0
        at_end, lag_end = _depth(engine, datetime.now(UTC)), _unscanned(engine)
        time.sleep(30)
        after, lag_after = _depth(engine, datetime.now(UTC)), _unscanned(engine)
        received = len(rec.sms) + rec.push + rec.email - received0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
        engine.dispose()
        return {"feed_rate": rate, "feed_seconds": round(fed, 1), "rows": total, "suspicious_rows": k,
                "depth_at_end_of_feed": at_end[0], "oldest_at_end_s": round(at_end[1], 1),
                "depth_30s_later": after[0], "unscanned_rows_at_end_of_feed": lag_end,
                "unscanned_rows_30s_later": lag_after, "messages_received": received,
                "messages_per_second_during_feed": round((samples[-1]["received"] if samples else 0) / max(fed, 1), 1),
                "samples": samples}
    finally:
        drop_db(base, name)


# -- part 3: end-to-end latency ---------------------------------------------------------------------
def latency(base: str, rate: float, duration: float, workers: int, scan_interval: float, poll: float,
            ports: tuple[int, int], rec: Recorder) -> dict[str, Any]:
    from sqlalchemy import insert

    from alerts.store.db import make_engine
    from alerts.store.models import SOURCE_MODELS
    from vigil.bootstrap import bootstrap
    from vigil.daemon import scan_until_caught_up

    n = int(rate * duration)
    name, url = create_db(base)
    try:
        app = bootstrap(settings_for(url))  # migrates
        start = datetime.now(UTC) - timedelta(days=20)
        accts: Any = SOURCE_MODELS["accounts"].__table__  # type: ignore[attr-defined]
        logins: Any = SOURCE_MODELS["logins"].__table__  # type: ignore[attr-defined]
        phones = [f"+8210{i:08d}" for i in range(n)]
        with app.engine.begin() as c:
            c.execute(insert(accts), [{"account_id": f"L{i:06d}", "locale": "en", "timezone": "UTC",
                                       "phone": phones[i], "email": f"l{i}@example.com",
                                       "push_token": f"tok{i}"} for i in range(n)])
            c.execute(insert(logins), [{"event_id": f"L{i:06d}-h{k}", "account_id": f"L{i:06d}",
                                        "ts": (start + timedelta(days=k)).isoformat(), "success": "true",
                                        "country": "KR", "city": "Seoul", "ip": f"10.0.{k}.1",
                                        "device_id": f"d{i}"} for i in range(n) for k in range(5)])
        scan_until_caught_up(app)  # the baseline: profiles learned, no alerts
        app.close()
        ctx = mp.get_context("spawn")
        go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=scan_worker, args=(url, go, stop, scan_interval, out))]
        procs += [ctx.Process(target=deliver_worker, args=(url, ports, f"w{i}", go, stop, poll, out))
                  for i in range(workers)]
        for p in procs:
            p.start()
        time.sleep(3.0 + workers)
        sms_before = len(rec.sms)
        go.set()
        engine = make_engine(url)
        committed: dict[str, float] = {}
        t0 = time.time()
        for i in range(n):  # a steady input rate: one committed login every 1/rate seconds
            time.sleep(max(0.0, t0 + i / rate - time.time()))
            with engine.begin() as c:
                c.execute(insert(logins), {"event_id": f"L{i:06d}-x", "account_id": f"L{i:06d}",
                                           "ts": datetime.now(UTC).isoformat(), "success": "true",
                                           "country": "BR", "city": "Sao Paulo", "ip": "200.1.1.1",
                                           "device_id": "evil"})
            committed[phones[i]] = time.time()
        deadline = time.time() + 60
        while time.time() < deadline:
            with rec.lock:
                seen = {to for _, to in rec.sms[sms_before:]}
            if set(committed) <= seen:
                break
            time.sleep(0.2)
        stop.set()
        runs = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        engine.dispose()
        first: dict[str, float] = {}
        with rec.lock:
            for at, to in rec.sms[sms_before:]:
                first.setdefault(to, at)
        lat = sorted(first[p] - committed[p] for p in committed if p in first)
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else lat * 99
        return {"rate_per_second": rate, "duration_seconds": duration, "logins": n, "sms_received": len(lat),
                "scan_interval": scan_interval, "worker_poll": poll, "workers": workers,
                "scan_runs": next(r[1] for r in runs if r[0] == "scanner"),
                "p50_ms": round(q[49] * 1000), "p99_ms": round(q[98] * 1000), "max_ms": round(lat[-1] * 1000),
                "mean_ms": round(statistics.fmean(lat) * 1000)}
    finally:
        drop_db(base, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-url", default=os.environ.get("VIGIL_TEST_PG_URL") or PG_DEFAULT)
    ap.add_argument("--alerts", type=int, default=1000, help="throughput: alerts (x3 messages)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="throughput: worker counts to run")
    ap.add_argument("--rate", type=float, default=10.0, help="latency: committed logins per second")
    ap.add_argument("--duration", type=float, default=30.0, help="latency: seconds of input")
    ap.add_argument("--scan-interval", type=float, default=1.0)
    ap.add_argument("--poll", type=float, default=0.1, help="latency: worker poll interval when idle")
    ap.add_argument("--provider-ms", type=float, default=0.0, help="every provider answers after this delay")
    ap.add_argument("--feed-rate", type=float, default=200.0, help="backlog: source rows per second")
    ap.add_argument("--feed-seconds", type=float, default=180.0, help="backlog: seconds of feed")
    ap.add_argument("--alert-share", type=float, default=0.05, help="backlog: share of rows that raise an alert")
    ap.add_argument("--skip-backlog", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    rec = Recorder(args.provider_ms / 1000)
    http = fake_http(rec)
    smtp = fake_smtp(rec)
    ports = (http.server_address[1], smtp.port)
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_before": os.getloadavg()}
    try:
        if not args.skip_throughput:
            report["throughput"] = [throughput(args.pg_url, args.alerts, w, ports, rec) for w in args.workers]
            for r in report["throughput"]:
                print(f"throughput: {r['workers']} worker(s): {r['provider_requests']} messages "
                      f"in {r['seconds']} s = {r['messages_per_second']} msg/s; rows sent twice: "
                      f"{r['rows_sent_twice']}", flush=True)
        if not args.skip_backlog:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                r = backlog(args.pg_url, args.feed_rate, args.feed_seconds, args.alert_share, ports, rec, Path(tmp))
            report["backlog"] = r
            print(f"backlog: {r['rows']} rows at {r['feed_rate']}/s ({r['suspicious_rows']} raising alerts): "
                  f"{r['depth_at_end_of_feed']} waiting at the end of the feed (oldest {r['oldest_at_end_s']} s), "
                  f"{r['depth_30s_later']} 30 s later; rows not yet scanned: {r['unscanned_rows_at_end_of_feed']}, "
                  f"then {r['unscanned_rows_30s_later']}; {r['messages_received']} messages received", flush=True)
        if not args.skip_latency:
            r = latency(args.pg_url, args.rate, args.duration, max(args.workers), args.scan_interval,
                        args.poll, ports, rec)
            report["latency"] = r
            print(f"latency: {r['logins']} logins at {r['rate_per_second']}/s, "
                  f"scan every {r['scan_interval']} s: "
                  f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
                  f"({r['sms_received']} SMS received)", flush=True)
    finally:
        report["load_avg_after"] = os.getloadavg()
        http.shutdown()
        smtp.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
