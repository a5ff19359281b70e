"""Fixtures for the channel tests (the SMTP server and free ports come from tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notifiers.notify_support import LoopbackHTTP, loopback

REPO = Path(__file__).resolve().parents[2]
TWILIO_SPEC = REPO / "node_modules/@twilio/cli-core/src/services/twilio-api/twilio_api_v2010.json"
PRISM_BIN = REPO / "node_modules/.bin/prism"


@pytest.fixture
def http_server() -> Iterator[LoopbackHTTP]:
    """A recording loopback HTTP server (FCM, token endpoint, webhook receiver, Twilio API)."""
    with loopback() as srv:
        yield srv


@pytest.fixture
def closed_port(port_factory) -> int:  # type: ignore[no-untyped-def]
    """A port nothing listens on: connecting is refused at once."""
    port: int = port_factory()
    return port


@pytest.fixture(scope="session")
def prism_url() -> Iterator[str]:
    """Prism serving Twilio's published OpenAPI spec (npm devDependencies) on a free port.

    Skipped only when ``node_modules`` is absent (run ``npm ci``); CI installs it.
    """
    if not (PRISM_BIN.exists() and TWILIO_SPEC.exists()):
        pytest.skip("node_modules absent: run `npm ci` to install Prism and the Twilio spec")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(PRISM_BIN), "mock", "--host", "127.0.0.1", "--port", str(port), str(TWILIO_SPEC)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    ready = threading.Event()
    tail: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            del tail[:-20]
            if "Prism is listening" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        # a guard against a hang, not a timing assertion: Prism loads a 1.9 MB spec (~10 s)
        if not ready.wait(180) or proc.poll() is not None:
            pytest.fail("Prism did not start:\n" + "\n".join(tail))
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group of the process this fixture started
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
