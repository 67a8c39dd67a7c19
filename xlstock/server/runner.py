"""Running the stock service on waitress: in the foreground (``xlstock serve``) until
Ctrl-C or SIGTERM, or in a background thread on a free port (the demo and the tests).

Both run the same loop, so both stop the same way: stop accepting connections, let
the requests in flight finish (a few seconds at most), close the sockets, close the
database.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from xlstock.errors import MissingExtra, UsageError
from xlstock.server.app import DEFAULT_MAX_BODY, create_app
from xlstock.server.storage import StockStore

try:
    from waitress import wasyncore
    from waitress.server import create_server
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtra("server", "the stock service (Flask and waitress)") from exc

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
THREADS = 8
DRAIN_SECONDS = 5.0
LOOP_TIMEOUT = 0.5

log = logging.getLogger("xlstock.server")


class RunningServer:
    """A waitress server bound to a port, serving one :class:`StockStore`.

    ``url``, ``host`` and ``port`` say where it listens. :meth:`stop` (or leaving the
    ``with`` block) stops it and closes the store.
    """

    def __init__(self, store: StockStore, server: Any) -> None:
        self.store = store
        self._server = server
        self._map: dict = server._map
        self.host: str = server.effective_host
        self.port: int = int(server.effective_port)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`request_stop` or :meth:`stop`; then shut down cleanly."""
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=LOOP_TIMEOUT, map=self._map, count=1)
            self._server.accepting = False
            deadline = time.monotonic() + DRAIN_SECONDS
            while self._busy() and time.monotonic() < deadline:
                wasyncore.loop(timeout=0.05, map=self._map, count=1)
        finally:
            self._server.task_dispatcher.shutdown(timeout=DRAIN_SECONDS)
            wasyncore.close_all(self._map, ignore_all=True)
            self.store.close()
            self._stopped.set()

    def _busy(self) -> bool:
        return any(
            getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
            for channel in list(self._map.values())
        )

    def request_stop(self) -> None:
        """Ask the serving loop to stop (safe from a signal handler or another thread)."""
        self._stopping.set()
        try:
            self._server.pull_trigger()
        except OSError:
            pass

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving, wait for the loop to finish, close the store."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        elif not self._stopped.is_set():
            wasyncore.close_all(self._map, ignore_all=True)
            self.store.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(db_path: str | Path, host: str, port: int, max_body: int) -> RunningServer:
    store = StockStore(db_path)
    try:
        server = create_server(
            create_app(store, max_body=max_body), host=host, port=port, threads=THREADS,
            ident="xlstock", clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        store.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another service "
            "using it? pass another --port"
        ) from exc
    except ValueError as exc:
        store.close()
        raise UsageError(
            f"cannot listen on {host!r}:{port} ({exc}); pass another --host"
        ) from exc
    if not hasattr(server, "_map"):
        wasyncore.close_all(server.map, ignore_all=True)
        store.close()
        raise UsageError(
            f"{host!r} names more than one address; pass one address, e.g. --host 127.0.0.1"
        )
    return RunningServer(store, server)


def start_background_server(
    db_path: str | Path, host: str = DEFAULT_HOST, port: int = 0, *,
    max_body: int = DEFAULT_MAX_BODY,
) -> RunningServer:
    """Start the service in a daemon thread (port 0: a free port) and return at once.

    Use ``.url`` to reach it and ``.stop()`` (or ``with``) to stop it.
    """
    running = _bind(db_path, host, port, max_body)
    thread = threading.Thread(
        target=running.serve_forever, name=f"xlstock-service-{running.port}", daemon=True
    )
    running._thread = thread
    thread.start()
    return running


def serve(
    db_path: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
    max_body: int = DEFAULT_MAX_BODY, ready: Any = None,
) -> None:
    """Run the service in this thread until Ctrl-C or SIGTERM (signals are caught only
    when this is the main thread; elsewhere, stop it through ``ready``'s server).

    ``ready``, if given, is called with the :class:`RunningServer` once it listens.
    """
    running = _bind(db_path, host, port, max_body)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        running.request_stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        log.info("xlstock stock service on %s (database %s)", running.url, running.store.path)
        if ready is not None:
            ready(running)
        running.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stock service stopped")
