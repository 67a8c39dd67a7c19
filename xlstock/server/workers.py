"""``xlstock serve --workers N``: the service on every core.

One service process runs its Python on one core. With ``--workers N`` the process
started (the supervisor) opens the listening socket, checks the database (and brings
its tables up to date) once, then forks N workers that each run the whole service
(:func:`xlstock.server.runner.serve`) on that one socket: the kernel hands each new
connection to whichever worker accepts it first, and a connection waiting in the listen
backlog is never lost with a worker. The workers share nothing but the database, where
everything that must hold across them already lives (levels, orders, idempotency keys,
sessions, sign-in failures, the form key, the low-stock queue and its claims). What each
worker keeps for itself: the connection cap (``--connections``) and the request threads
(``--threads``) are per worker, the cache of stock documents is per worker (keyed by the
shop's version, so never stale), and only worker 1 sends the low-stock e-mails.

The supervisor does nothing but watch: a worker that dies (killed, crashed) is replaced
at once, and the service goes on answering on the others meanwhile; SIGTERM or SIGINT
(Ctrl-C) is passed to every worker, which finish the requests in flight and stop; a
worker that dies within :data:`START_SECONDS` of its start :data:`START_FAILURES` times
in a row (the database became unreachable, the disk is full) stops the service with an
error instead of restarting it for ever. A worker whose supervisor is gone stops too.

Workers are forked: POSIX only (Windows runs one process, with ``--threads``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from xlstock import failpoints
from xlstock.errors import UsageError, XlstockError
from xlstock.server.runner import (
    ServerSettings,
    adjustments,
    cannot_listen,
    serve,
)
from xlstock.server.storage import StockStore

log = logging.getLogger("xlstock.server")

START_SECONDS = 10.0
"""A worker that dies sooner than this after its start died starting."""
START_FAILURES = 5
"""Deaths at start in a row after which the service stops instead of restarting."""
STOP_SECONDS = 20.0
"""How long the workers have to stop on SIGTERM before they are killed."""
TICK = 0.1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
FAILPOINT = "worker-start"
"""The crash point (``XLSTOCK_FAILPOINT``) a worker reaches as it starts: the tests make
every worker die there."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def listen(host: str, port: int, settings: ServerSettings) -> socket.socket:
    """A socket listening on ``host``:``port``, for the workers to share."""
    family, kind, proto, address = adjustments(host, port, settings).listen[0][:4]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise cannot_listen(host, port, exc) from exc
    return sock


@dataclass
class _Worker:
    number: int
    pid: int
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Forks and watches the workers of one ``xlstock serve --workers`` (see the
    module's docstring)."""

    def __init__(self, db_path: str | Path, sock: socket.socket, workers: int,
                 settings: ServerSettings) -> None:
        self.db_path = db_path
        self.sock = sock
        self.count = workers
        self.settings = settings
        self.workers: dict[int, _Worker] = {}
        self.stopping: int | None = None
        self.failures_in_a_row = 0

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT; raises :class:`UsageError` when the workers
        keep dying as they start."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for number in range(1, self.count + 1):
                self._start(number)
            while self.stopping is None:
                self._reap()
                time.sleep(TICK)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping is None:
            log.info("stopping on %s", signal.Signals(signum).name)
            self.stopping = signum

    def _start(self, number: int) -> None:
        supervisor = os.getpid()
        # SIGTERM and SIGINT wait, blocked, until the worker has its handlers (a worker
        # stopped as it starts stops cleanly) and until the supervisor knows the worker.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # the worker
                os._exit(self._work(number, supervisor))
            self.workers[pid] = _Worker(number, pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        log.info("worker %d started (process %d)", number, pid)

    def _work(self, number: int, supervisor: int) -> int:
        """The worker's life, in the forked process; returns its exit status."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)  # until serve() takes them

        def serving(running: Any) -> None:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

        try:
            failpoints.reach(FAILPOINT)
            serve(self.db_path, settings=self.settings, sock=self.sock, ready=serving,
                  supervisor=supervisor, send_mail=number == 1)
            return 0
        except XlstockError as exc:
            log.error("worker %d could not serve: %s", number, exc)
            return 2
        except BaseException:
            log.exception("worker %d failed", number)
            return 1
        finally:
            for handler in logging.getLogger("xlstock.server").handlers:
                handler.flush()
            sys.stderr.flush()

    def _reap(self) -> None:
        """Replace each worker that ended; give up when they keep dying at start."""
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._replace(worker, status)

    def _replace(self, worker: _Worker, status: int) -> None:
        lived = time.monotonic() - worker.started
        how = _ending(status)
        if lived < START_SECONDS:
            self.failures_in_a_row += 1
        else:
            self.failures_in_a_row = 0
        if self.failures_in_a_row >= START_FAILURES:
            raise UsageError(
                f"the service's workers keep stopping as they start (the last {how}); "
                "the lines above say why: fix it (the database, its disk, the options) "
                "and start again"
            )
        log.warning("worker %d (process %d) %s after %.0f s; starting another",
                    worker.number, worker.pid, how, lived)
        if self.failures_in_a_row > 1:
            time.sleep(min(2.0, 0.2 * self.failures_in_a_row))
        self._start(worker.number)

    def _stop_all(self) -> None:
        """SIGTERM to every worker, then wait; SIGKILL for those not stopped in time."""
        for pid in list(self.workers):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self.workers and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(TICK)
            self.workers.pop(pid, None)
        for pid in list(self.workers):
            log.warning("worker process %d did not stop in %.0f s: killing it", pid,
                        STOP_SECONDS)
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.workers.clear()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _ending(status: int) -> str:
    """How a worker ended, from its wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"was killed by {name}"
    return f"stopped with exit status {os.WEXITSTATUS(status)}"


def serve_workers(db_path: str | Path, host: str, port: int, *, workers: int,
                  settings: ServerSettings) -> None:
    """Run the service as ``workers`` processes on one socket until SIGTERM or Ctrl-C
    (see the module's docstring)."""
    if not hasattr(os, "fork"):
        raise UsageError("--workers more than 1 needs Linux, macOS or another POSIX "
                         "system; on Windows pass --workers 1 and raise --threads")
    sock = listen(host, port, settings)
    try:
        store = StockStore(db_path, daily_quota=settings.daily_quota,
                           low_stock_mail=settings.mail is not None)
        description = store.description
        store.close()  # opened to fail here, once, and to migrate once: no fork holds it
        shown = sock.getsockname()
        url = (f"http://[{shown[0]}]:{shown[1]}" if sock.family == socket.AF_INET6
               else f"http://{shown[0]}:{shown[1]}")
        log.info("xlstock stock service on %s (database %s), %d workers", url,
                 description, workers)
        Supervisor(db_path, sock, workers, settings).run()
    finally:
        sock.close()
    log.info("stock service stopped")
