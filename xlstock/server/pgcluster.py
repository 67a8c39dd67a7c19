"""A throw-away PostgreSQL server in a temporary folder, for the tests and benchmarks.

Uses the PostgreSQL programs of the machine (Debian's ``postgresql`` package installs
them under ``/usr/lib/postgresql/<version>/bin``; ``XLSTOCK_PG_BIN`` names another
folder). PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to,
and runs as, the unprivileged user ``nobody`` (through ``runuser``). It listens on a
free loopback port only, trusts local connections (nothing else can reach it) and is
removed by :meth:`PgCluster.stop`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

RUN_AS = "nobody"
SUPERUSER = "xlstock"


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    named = os.environ.get("XLSTOCK_PG_BIN")
    candidates = [named] if named else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]),
        reverse=True,
    )
    for folder in candidates:
        if folder and all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def why_unavailable() -> str | None:
    if find_binaries() is None:
        return ("PostgreSQL's programs (initdb, pg_ctl) are not installed: apt-get install "
                "postgresql, or set XLSTOCK_PG_BIN")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL as another user"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install 'xlstock[postgres]'"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgCluster:
    """``with PgCluster() as pg: pg.new_database()`` -> a libpq URL of an empty database."""

    def __init__(self, *, durable: bool = False, settings: dict[str, str] | None = None):
        binaries = find_binaries()
        if binaries is None:
            raise RuntimeError(why_unavailable())
        self.bin = binaries
        self.durable = durable
        self.settings = settings or {}
        self.folder = Path(tempfile.mkdtemp(prefix="xlstock-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", RUN_AS, "--"]
            shutil.chown(self.folder, RUN_AS)
        self.running = False

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120,
                       cwd=self.folder)

    def start(self) -> PgCluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        self.port = _free_port()
        options = {
            "listen_addresses": "127.0.0.1", "port": str(self.port),
            "unix_socket_directories": str(self.folder), "max_connections": "300",
            "shared_buffers": "128MB",
        }
        if not self.durable:  # tests: nothing here needs to outlive a power cut
            options.update({"fsync": "off", "synchronous_commit": "off",
                            "full_page_writes": "off"})
        options.update(self.settings)
        flags = " ".join(f"-c {name}={value}" for name, value in options.items())
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", flags,
                  "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")
        self.running = True
        return self

    def restart(self) -> None:
        """Stop the server (its clients' connections break) and start it again."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                  "-l", str(self.folder / "server.log"), "-w", "-t", "60", "restart")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.running:
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")
            finally:
                self.running = False
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
