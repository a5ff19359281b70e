"""A private, throw-away PostgreSQL cluster that a test may stop, start, freeze and thaw.

Never the shared server on 127.0.0.1:5432 (other test runs use it): :class:`PrivateCluster`
runs ``initdb`` into a temporary directory and ``pg_ctl`` on a free port, with the server
binaries of ``/usr/lib/postgresql/<version>/bin`` (``VIGIL_PG_BIN`` overrides).  As root the
binaries run as the ``postgres`` user (``runuser``).  Absent binaries skip the tests that need
the cluster; nothing else does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.providers import free_port


def pg_bin() -> Path | None:
    env = os.environ.get("VIGIL_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "pg_ctl").exists() else None
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class PrivateCluster:
    def __init__(self, bindir: Path) -> None:
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="vigil-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{tool} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def _pids(self) -> list[int]:
        """The postmaster and its children (the backends and helpers)."""
        pm = int((self.data / "postmaster.pid").read_text().split()[0])
        kids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pm:
                kids.append(int(stat.parent.name))
        return [*kids, pm]

    def freeze(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._pids()):
            os.kill(pid, signal.SIGCONT)

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.thaw()
        except (OSError, ValueError):
            pass
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def wait_for(pred: object, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(every)
    return False
