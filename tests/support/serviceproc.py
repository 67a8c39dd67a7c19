"""``xlstock serve`` as a real process (``--workers N`` among its options), for the tests
that need several service processes: its log in a file (never a full pipe), its URL
read from the log, its workers' process ids read from ``/proc``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from xlstock.server.storage import StockStore

SERVE = "from xlstock.cli.server_commands import serve_command; serve_command()"


class ServiceProcess:
    """``xlstock serve --db DB --port 0 ARGS...``; ``url`` once it listens, ``store``
    a :class:`StockStore` of this process on the same database (to register shops, as
    ``xlstock shop add`` does beside a running service)."""

    def __init__(self, db: Any, log: Path, *args: str,
                 env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.db = db
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--db", str(db), "--port", "0", *args],
            stdout=subprocess.DEVNULL, stderr=self._log_file,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.process.pid
        self.url = ""
        self._store: StockStore | None = None
        if wait:
            self.wait_for_url()

    def wait_for_url(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not self.url:
            if found := re.search(r" on (http://127\.0\.0\.1:\d+)", self.text()):
                self.url = found.group(1)
            elif self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start: {self.text()}")
            else:
                time.sleep(0.05)
        return self.url

    @property
    def store(self) -> StockStore:
        if self._store is None:
            self._store = StockStore(self.db)
        return self._store

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        """The process ids of the service's workers alive now (its children)."""
        found: set[int] = set()
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                found.update(int(pid) for pid in (task / "children").read_text().split())
            except OSError:
                pass
        return {pid for pid in found if _alive(pid)}

    def wait_for_workers(self, count: int, timeout: float = 30) -> set[int]:
        deadline = time.monotonic() + timeout
        while len(pids := self.workers()) != count:
            assert time.monotonic() < deadline, (pids, self.text()[-3000:])
            time.sleep(0.05)
        return pids

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, and the exit status once stopped."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._close()

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._log_file.close()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.process.poll() is None:
                self.stop()
        finally:
            if self.process.poll() is None:  # a stuck service
                self.process.kill()
                self.process.wait(10)
            self._close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not yet waited for, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
