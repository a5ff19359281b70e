"""SMTP relays that hang, answer slowly, or drop the connection after ``DATA`` (aiosmtpd), with the
real email, SMS and push adapters, on PostgreSQL (issue 14 points 5-7).

What holds: one transmission per attempt (a timeout or a drop after ``DATA`` is an ``unknown``
outcome, never resent through a fresh connection); each message accepted once even when the
relay is slower than the lease; and a hung relay never delays push or SMS.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alerts.store.db import make_engine, session_factory
from alerts.store.models import Delivery, OutboxRow
from delivery.channels import build_channels
from delivery.deliver import Deliverer
from notifiers.base import Message, Recipient
from notifiers.email import EmailChannel, EmailConfig
from tests.delivery.conftest import make_test_app
from tests.delivery.kit import account, alert, render
from tests.faults.providers import FakeApis, FaultRelay, SilentListener, channels_config
from vigil.bootstrap import App, load_rule_set

NO_BUDGET = {"budgets": {}, "receipt_channels": []}


def now() -> datetime:
    return datetime.now(UTC)


def later() -> datetime:
    return now() + timedelta(minutes=10)  # past backoff_seconds (60) with its jitter


def email_only(port: int, timeout: float = 10) -> dict[str, Any]:
    return {"console": {"enabled": False}, "email": {"enabled": True, "host": "127.0.0.1", "port": port,
                                                     "timeout": timeout}}


@pytest.fixture
def make_app(pg_url: str) -> Iterator[Any]:
    made: list[App] = []
    rules = load_rule_set(None)

    def make(channels: dict[str, Any], **delivery: Any) -> App:
        a = make_test_app(pg_url, now, rules, channels=channels, policy=NO_BUDGET,  # type: ignore[arg-type]
                          delivery={"backoff_seconds": 60, **delivery})
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def seed(app: App, n: int, chans: tuple[str, ...]) -> None:
    at = now() - timedelta(seconds=1)
    with app.sessions.begin() as s:
        for i in range(n):
            account(s, f"F{i}", phone=f"+8210666{i:05d}", email=f"f{i}@example.com", push_token=f"tok-F{i}")
            alert(s, i, account_id=f"F{i}", channels=chans, now=at)


def rows(app: App, channel: str) -> list[OutboxRow]:
    with app.sessions() as s:
        return list(s.scalars(select(OutboxRow).where(OutboxRow.channel == channel)))


def attempts(app: App, channel: str) -> Counter[str]:
    with app.sessions() as s:
        return Counter(s.scalars(select(Delivery.status).where(Delivery.channel == channel)))


def test_a_drop_after_data_is_one_transmission_and_an_unknown_outcome(relay: FaultRelay, make_app: Any) -> None:
    relay.mode = "drop"
    ch = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=relay.port, timeout=5))
    msg = Message(outbox_id="ob-drop", channel="email", recipient=Recipient("A1", email="a1@example.com"),
                  subject="Was this you?", text="A sign-in from Sao Paulo.")
    result = ch.send(msg)
    assert result.status == "unknown" and "after DATA" in (result.error or "")
    assert len(relay.data) == 1  # no reconnect-and-resend within the attempt
    ch.close()

    app = make_app(email_only(relay.port, timeout=5))
    seed(app, 3, ("email",))
    d = Deliverer(app.sessions, app.settings, app.channels, render, clock=now)
    rep = d.drain(now)
    assert rep.unknown == 3 and rep.retried == 3 and len(relay.data) == 4  # once per message
    assert {r.status for r in rows(app, "email")} == {"retry"}
    relay.mode = "ok"
    d.close()
    d = Deliverer(app.sessions, app.settings, app.channels, render, clock=later)  # the backoff has passed
    rep = d.drain(later)
    assert rep.sent == 3
    assert max(relay.counts().values()) == 1 and len(relay.accepted) == 3
    assert attempts(app, "email") == {"unknown": 3, "delivered": 3}
    d.close()


def test_a_hung_relay_times_out_and_never_delays_push_or_sms(relay: FaultRelay, apis: FakeApis, key_file: Path,
                                                             make_app: Any) -> None:
    relay.mode = "hang"
    app = make_app(channels_config(apis, relay.port, key_file, email_timeout=3))
    seed(app, 6, ("email", "sms", "push"))
    d = Deliverer(app.sessions, app.settings, app.channels, render, clock=now)
    t0 = time.monotonic()
    done: dict[str, float] = {}
    worker = threading.Thread(target=lambda: done.setdefault("report", d.drain(now)))  # type: ignore[func-returns-value]
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "others" not in done:
        if all(r.status == "sent" for ch in ("sms", "push") for r in rows(app, ch)):
            done["others"] = time.monotonic() - t0
        time.sleep(0.05)
    worker.join()
    email_done = time.monotonic() - t0
    assert "others" in done and sum(apis.sms.values()) == 6 and sum(apis.push.values()) == 6
    # every SMS and push was recorded before the first email had even timed out (3 s)
    assert done["others"] < 3.0 < email_done, (done, email_done)
    assert attempts(app, "email") == {"unknown": 6} and relay.accepted == []
    assert len(relay.data) == 6  # one transmission each, none resent through a new connection
    relay.mode = "ok"
    relay.released.set()
    d.close()
    d = Deliverer(app.sessions, app.settings, app.channels, render, clock=later)  # the backoff has passed
    d.drain(later)
    assert sorted(relay.counts().values()) == [1] * 6
    d.close()


def test_a_relay_silent_before_its_greeting_is_a_plain_retry(make_app: Any) -> None:
    silent = SilentListener()
    try:
        app = make_app(email_only(silent.port, timeout=1))
        seed(app, 2, ("email",))
        d = Deliverer(app.sessions, app.settings, app.channels, render, clock=now)
        rep = d.drain(now)
        assert rep.retried == 2 and rep.unknown == 0  # nothing was handed over: safe to send again
        assert attempts(app, "email") == {"transient": 2}
        d.close()
    finally:
        silent.stop()


def test_a_relay_slower_than_the_lease_gets_each_message_once(relay: FaultRelay, make_app: Any) -> None:
    """The relay takes 2.5 s per message against a 1 s lease; two workers drain the same outbox."""
    relay.mode, relay.delay = "slow", 2.5
    app = make_app(email_only(relay.port), lease_seconds=1)
    seed(app, 6, ("email",))
    engines = [make_engine(app.settings.database_url) for _ in range(2)]
    workers = [Deliverer(session_factory(e), app.settings, build_channels(app.settings), render, worker=f"w{i}",
                         clock=now) for i, e in enumerate(engines)]
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda w=w: reports.append(w.drain(now))) for w in workers]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join()
    assert len(relay.data) == 6 and sorted(relay.counts().values()) == [1] * 6
    assert sum(r.sent for r in reports) == 6
    assert attempts(app, "email") == {"delivered": 6}
    assert {r.attempts for r in rows(app, "email")} == {1}
    for w in workers:
        for ch in w.channels.values():
            ch.close()
        w.close()
    for e in engines:
        e.dispose()
