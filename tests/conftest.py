"""Shared fixtures: real databases, a real SMTP server, a real browser, free ports.

Databases
    ``db_url`` runs a test twice: on a fresh SQLite file and on a fresh PostgreSQL database created
    for that test on the server of ``VIGIL_TEST_PG_URL`` (default
    ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and dropped afterwards.  ``engine``
    adds ``alerts.store.db.upgrade`` (Alembic, ``head``) and yields an Engine.  ``pg_url`` is the
    PostgreSQL-only variant.  Every PostgreSQL test carries the ``postgres`` marker.

    An unreachable PostgreSQL skips those tests on a developer's machine, but is a failure when
    ``CI`` is set or ``VIGIL_REQUIRE_PG=1`` (``scripts/test`` sets it): then any skipped postgres
    test fails the run, and ``VIGIL_PG_REPORT=FILE`` receives the counts as JSON.

Other services
    ``smtp_server`` / ``smtp_server_auth``: aiosmtpd on a free loopback port, capturing messages.
    ``browser`` (alias ``chromium``) and ``page``: Playwright driving Debian's ``/usr/bin/chromium``
    (``VIGIL_CHROMIUM`` overrides); never a downloaded browser.  Absent Chromium skips, or fails
    under ``CI``.  ``free_port`` is a free TCP port on 127.0.0.1; ``port_factory`` picks more.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)
_DB_PREFIX = "vigil_t_"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def in_ci() -> bool:
    return _truthy(os.environ.get("CI"))


def require_pg() -> bool:
    """Under CI or with VIGIL_REQUIRE_PG=1 (scripts/test) PostgreSQL must be there: no skips."""
    return in_ci() or os.environ.get("VIGIL_REQUIRE_PG") == "1"


def _unavailable(what: str, strict: bool, why: str) -> None:
    if strict:
        pytest.fail(f"{what} ({why} is set: a failure, not a skip)", pytrace=False)
    pytest.skip(what)


# -- free ports ---------------------------------------------------------------------------------
def pick_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    return pick_free_port()


@pytest.fixture
def port_factory() -> Callable[[], int]:
    return pick_free_port


# -- databases ----------------------------------------------------------------------------------
def pg_base_url() -> str:
    return os.environ.get("VIGIL_TEST_PG_URL") or PG_DEFAULT


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _Postgres:
    """Creates and drops one database per test on the server of ``VIGIL_TEST_PG_URL``."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = make_url(url)
        self._error: str | None = None
        self._checked = False
        self._admin: Any = None

    def admin(self) -> Any:
        if self._admin is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                        connect_args={"connect_timeout": 5})
        return self._admin

    def error(self) -> str | None:
        """None when the server answers, else why not (checked once per session)."""
        if not self._checked:
            self._checked = True
            from sqlalchemy import text

            try:
                with self.admin().connect() as c:
                    c.execute(text("SELECT 1"))
                self._drop_stale()
            except Exception as e:  # any driver error means "unreachable" here
                self._error = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return self._error

    def create(self) -> tuple[str, str]:
        from sqlalchemy import text

        name = f"{_DB_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:12]}"
        with self.admin().connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        return name, self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        from sqlalchemy import text

        with self.admin().connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _drop_stale(self) -> None:
        """Drop test databases left by killed runs (their process is gone); never another live run's."""
        from sqlalchemy import text

        with self.admin().connect() as c:
            names = c.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                              {"p": _DB_PREFIX + "%"}).scalars().all()
        for name in names:
            m = re.fullmatch(rf"{_DB_PREFIX}(\d+)_[0-9a-f]+", name)
            if m and not _alive(int(m.group(1))):
                self.drop(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_Postgres]:
    pg = _Postgres(pg_base_url())
    yield pg
    if pg._admin is not None:
        pg._admin.dispose()


def _fresh_pg(pg: _Postgres) -> Iterator[str]:
    err = pg.error()
    if err is not None:
        _unavailable(f"PostgreSQL at {_redacted(pg_base_url())} is unreachable: {err}", require_pg(),
                     "CI or VIGIL_REQUIRE_PG=1")
    name, url = pg.create()
    try:
        yield url
    finally:
        pg.drop(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _postgres: _Postgres) -> Iterator[str]:
    """A fresh, empty database URL: SQLite file, then PostgreSQL database (run twice)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vigil.db'}"
    else:
        yield from _fresh_pg(_postgres)


@pytest.fixture
def pg_url(_postgres: _Postgres) -> Iterator[str]:
    """A fresh PostgreSQL database only (the test is marked ``postgres`` automatically)."""
    yield from _fresh_pg(_postgres)


@pytest.fixture
def engine(db_url: str) -> Iterator[Any]:
    """An Engine on a fresh database migrated to Alembic ``head``."""
    from alerts.store.db import make_engine, upgrade

    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


# -- SMTP ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CapturedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    login: str | None = None


@dataclass
class SmtpServer:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    messages: list[CapturedMail] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[CapturedMail]:
        """Block until ``count`` messages arrived (the timeout only guards against a hang)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} message(s), the SMTP server got {len(self.messages)}")
            return list(self.messages)

    # aiosmtpd handler hook
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        msg = cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))
        auth = getattr(session, "auth_data", None)
        login = auth.decode() if isinstance(auth, bytes) else None
        with self._cond:
            self.messages.append(CapturedMail(envelope.mail_from, list(envelope.rcpt_tos), raw, msg, login))
            self._cond.notify_all()
        return "250 Message accepted for delivery"


def _smtp(user: str | None = None, password: str | None = None) -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    port = pick_free_port()
    srv = SmtpServer("127.0.0.1", port, user, password)
    kw: dict[str, Any] = {}
    if user is not None:
        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = (isinstance(data, LoginPassword) and data.login.decode() == user
                  and data.password.decode() == password)
            return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

        kw = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
    controller = Controller(srv, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    try:
        yield srv
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, no auth; ``.messages`` / ``.wait_for(n)``."""
    yield from _smtp()


@pytest.fixture
def smtp_server_auth() -> Iterator[SmtpServer]:
    """Like ``smtp_server`` but AUTH (PLAIN/LOGIN) is required: user ``vigil``, password ``s3cret``."""
    yield from _smtp("vigil", "s3cret")


# -- browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright's sync API (never ``playwright install``).

    Module-scoped: the sync API keeps an event loop running in the main thread while it lives, so
    a session-wide browser would break every later test that calls ``asyncio.run`` (the SDKs'
    async clients); starting Chromium once per browser-test module costs about a second."""
    path = os.environ.get("VIGIL_CHROMIUM") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        _unavailable(f"Chromium not found at {path} (Debian: apt-get install chromium)", in_ci(), "CI")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def chromium(browser: Any) -> Any:
    return browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new page in its own browser context (cookies and storage do not leak between tests)."""
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


# -- markers and the postgres accounting ------------------------------------------------------
_BROWSER_FIXTURES = {"browser", "chromium", "page"}
_PG_COUNTS = {"passed": 0, "skipped": 0, "failed": 0}


def pytest_configure(config: pytest.Config) -> None:
    # the test SMTP server requires AUTH on plain loopback on purpose (smtp_server_auth)
    config.addinivalue_line("filterwarnings", "ignore:Requiring AUTH while not requiring TLS:UserWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if "pg_url" in names:
            item.add_marker(pytest.mark.postgres)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "postgres" not in report.keywords:
        return
    if report.skipped:
        _PG_COUNTS["skipped"] += 1
    elif report.failed:
        _PG_COUNTS["failed"] += 1
    elif report.when == "call":
        _PG_COUNTS["passed"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("VIGIL_PG_REPORT")
    if target:
        Path(target).write_text(json.dumps(_PG_COUNTS) + "\n", encoding="utf-8")
    if require_pg() and _PG_COUNTS["skipped"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    c = _PG_COUNTS
    if any(c.values()):
        terminalreporter.write_line(
            f"postgres tests: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
            + (" -- skipped postgres tests fail this run (CI / VIGIL_REQUIRE_PG=1)"
               if c["skipped"] and require_pg() else ""))
