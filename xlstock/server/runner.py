"""Running the stock service on waitress: in the foreground (``xlstock serve``) until
Ctrl-C or SIGTERM, or in a background thread on a free port (the demo and the tests);
each worker of ``xlstock serve --workers`` (:mod:`xlstock.server.workers`) runs
:func:`serve` on the listening socket they share.

Both run the same loop, so both stop the same way: stop accepting connections, let
the requests in flight finish (a few seconds at most), close the sockets, close the
database.

Connections. waitress keeps every connection in one event loop and hands a request to
a worker thread only once it has arrived whole, so idle and slow connections cost a
socket each, never a thread. What it lacks is a limit on how long a request may take to
arrive: its ``channel_timeout`` counts from the last byte received, so a client sending
its headers one byte a second is never dropped, and up to ``connection_limit`` of them
lock every other client out. No maintained WSGI server that also runs on Windows has
such a limit either (cheroot gives each slow connection a worker thread; uvicorn's
timeouts are also reset by every byte, and it is not WSGI), so :class:`GuardedServer`
adds one on waitress's own hooks: a request's headers must arrive within
``header_timeout`` of its first byte, and the whole request within ``request_timeout``,
or the connection is closed. Connections idle between requests are closed after
``idle_timeout``, and at ``connections`` (waitress's ``connection_limit``, past which it
stops accepting, leaving new clients in the listen backlog behind idle clients that
reconnect as soon as they are dropped) a new connection is accepted all the same and the
connection idle the longest is closed to make room: a connection that is sending or
being answered is never closed for room. Every error waitress answers itself (a
malformed request, headers too large) is JSON with a code, like the application's.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from xlstock.errors import MissingExtra, UsageError
from xlstock.server.app import DEFAULT_MAX_BODY, create_app
from xlstock.server.mail import LowStockMailer, MailSettings
from xlstock.server.storage import DEFAULT_DAILY_QUOTA, StockStore

try:
    from waitress import wasyncore
    from waitress.adjustments import Adjustments
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.server import TcpWSGIServer
    from waitress.task import ErrorTask
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtra("server", "the stock service (Flask and waitress)") from exc

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DRAIN_SECONDS = 5.0
LOOP_TIMEOUT = 0.5
CAP_WARNING_INTERVAL = 60.0
"""Seconds between two warnings that the connection cap is reached."""
USE_POLL = hasattr(select, "poll")
"""poll() on POSIX: select() cannot watch sockets numbered 1024 and above."""

log = logging.getLogger("xlstock.server")


@dataclass(frozen=True)
class ServerSettings:
    """How the service treats connections and what it accepts.

    ``connections``: open connections at most (at it, a new one closes the connection
    idle the longest; with none idle, it waits in the listen backlog); ``threads``:
    requests served at once; ``idle_timeout``: seconds a connection may stay idle
    between requests; ``header_timeout``: seconds a request's headers may take to
    arrive; ``request_timeout``: seconds a whole request (headers and body) may take to
    arrive; ``max_body``: request body cap in bytes (after gzip inflation);
    ``daily_quota``: bytes one shop may store in a UTC day; ``mail``: the SMTP server
    for low-stock e-mails (``None``: no e-mail).
    """

    connections: int = 1000 if USE_POLL else 500
    threads: int = 8
    idle_timeout: int = 15
    header_timeout: float = 10.0
    request_timeout: float = 60.0
    max_body: int = DEFAULT_MAX_BODY
    daily_quota: int = DEFAULT_DAILY_QUOTA
    mail: MailSettings | None = None

    def __post_init__(self) -> None:
        if not USE_POLL and self.connections > 500:
            # Windows' select() watches at most 512 sockets (FD_SETSIZE in CPython).
            raise UsageError("on Windows the service takes at most 500 connections; "
                             "pass --connections 500 or fewer")
        for name in ("connections", "threads", "idle_timeout", "header_timeout",
                     "request_timeout", "max_body", "daily_quota"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be more than 0")


_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Request Entity Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}
_ERROR_CODES = {400: "bad_request", 413: "payload_too_large", 431: "headers_too_large",
                500: "internal_error"}


class _TimedParser(HTTPRequestParser):
    """waitress's request parser, remembering when the request's first byte came."""

    def __init__(self, adj: Any) -> None:
        super().__init__(adj)
        self.started = time.monotonic()


class _JsonErrorTask(ErrorTask):
    """waitress's own error answers (malformed request line or headers, headers too
    large, a body framing it cannot read) as JSON errors with a code. A transfer coding
    waitress does not implement (501 there) is the client's to fix: 400 here."""

    def execute(self) -> None:
        error = self.request.error
        status = 400 if error.code == 501 else int(error.code)
        status = status if status in _REASONS else 400
        detail = str(error.body or error.reason).strip()
        if error.code == 501:
            detail += "; send the body with Content-Length, or Transfer-Encoding: chunked"
        body = json.dumps(
            {"error": {"code": _ERROR_CODES.get(status, "bad_request"),
                       "message": f"the request could not be read: {detail[:300]}"}},
            ensure_ascii=True, separators=(",", ":"),
        ).encode("ascii")
        self.status = f"{status} {_REASONS[status]}"
        self.response_headers.extend([
            ("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"),
        ])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _GuardedChannel(HTTPChannel):
    parser_class = _TimedParser
    error_task_class = _JsonErrorTask

    def __init__(self, server: Any, *args: Any, **kw: Any) -> None:
        super().__init__(server, *args, **kw)
        server.newest_channel = self

    def idle(self) -> bool:
        """Nothing under way: no request arriving, none served, nothing left to send."""
        return not (self.request is not None or self.requests or self.total_outbufs_len
                    or self.will_close or self.close_when_flushed)


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server, also closing connections whose request does not arrive in
    time, and at the connection cap making room for a new client by closing the
    connection idle the longest (see the module's docstring)."""

    channel_class = _GuardedChannel
    next_channel_cleanup: float
    in_connection_overflow: bool

    def __init__(self, application: Any, *, adj: Any, header_timeout: float,
                 request_timeout: float, **kw: Any) -> None:
        self.header_timeout = header_timeout
        self.request_timeout = request_timeout
        self.newest_channel: Any = None
        self.dropped_for_room = 0
        self._next_cap_warning = 0.0
        super().__init__(application, adj=adj, **kw)

    def readable(self) -> bool:
        """Whether to accept connections: below the cap, or at it while some connection
        is idle (it is closed to make room once the new one is accepted). waitress
        stops accepting at the cap, and the new client waits in the listen backlog
        behind idle connections that reconnect as soon as they are dropped."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        full = len(self._map) >= self.adj.connection_limit
        if full and not self.in_connection_overflow and now >= self._next_cap_warning:
            self._next_cap_warning = now + CAP_WARNING_INTERVAL
            log.warning("%d connections are open, the limit: each new one closes the "
                        "connection idle the longest", len(self.active_channels))
        self.in_connection_overflow = full
        return not full or self._longest_idle() is not None

    def handle_accept(self) -> None:
        self.newest_channel = None
        super().handle_accept()
        if self.newest_channel is None or len(self._map) <= self.adj.connection_limit:
            return
        oldest = self._longest_idle(besides=self.newest_channel)
        if oldest is not None:
            self.dropped_for_room += 1
            oldest.handle_close()

    def _longest_idle(self, besides: Any = None) -> Any:
        """The idle connection whose last byte is the oldest, or ``None``."""
        found = None
        for channel in list(self.active_channels.values()):
            if channel is not besides and channel.idle() and (
                    found is None or channel.last_activity < found.last_activity):
                found = channel
        return found

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        clock = time.monotonic()
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is None or channel.will_close:
                continue
            limit = self.request_timeout if request.headers_finished else self.header_timeout
            waited = clock - getattr(request, "started", clock)
            if waited > limit:
                log.info("closing a connection from %s: its request took over %g s to arrive",
                         channel.addr[0] if channel.addr else "?", limit)
                channel.will_close = True


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
        self.mailer: LowStockMailer | None = None
        self.supervisor: int | None = None
        """The process id of the supervisor of ``xlstock serve --workers``: a worker
        stops once it is gone, instead of serving on unsupervised."""

    def start_mail(self, settings: MailSettings | None) -> None:
        """Start sending low-stock e-mails through ``settings``' SMTP server (links to
        this server's address unless the settings name the service's own)."""
        if settings is None:
            return
        if not settings.service_url:
            settings = replace(settings, service_url=self.url)
        self.mailer = LowStockMailer(self.store, settings).start()
        log.info("low stock e-mails through %s:%d, at most one digest per shop every %d s",
                 settings.smtp_host, settings.smtp_port, settings.digest_seconds)

    def _stop_mail(self) -> None:
        if self.mailer is not None:
            self.mailer.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`request_stop` or :meth:`stop`; then shut down cleanly."""
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=LOOP_TIMEOUT, map=self._map, use_poll=USE_POLL,
                               count=1)
                if self.supervisor is not None and os.getppid() != self.supervisor:
                    log.warning("the service's supervisor is gone: this worker stops")
                    break
            self._server.accepting = False
            deadline = time.monotonic() + DRAIN_SECONDS
            while self._busy() and time.monotonic() < deadline:
                wasyncore.loop(timeout=0.05, map=self._map, use_poll=USE_POLL, count=1)
        finally:
            self._server.task_dispatcher.shutdown(timeout=DRAIN_SECONDS)
            wasyncore.close_all(self._map, ignore_all=True)
            self._stop_mail()
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
            self._stop_mail()
            self.store.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def adjustments(host: str, port: int, settings: ServerSettings) -> Any:
    """waitress's settings for ``settings``, listening on ``host``:``port`` (one address:
    a host name that resolves to several is refused)."""
    try:
        adj = Adjustments(
            host=host, port=port, threads=settings.threads, ident="xlstock",
            clear_untrusted_proxy_headers=True, connection_limit=settings.connections,
            channel_timeout=settings.idle_timeout, cleanup_interval=1,
            asyncore_use_poll=USE_POLL, max_request_body_size=settings.max_body * 2,
        )
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot listen on {host!r}:{port} ({exc}); pass another --host"
        ) from exc
    if len(adj.listen) != 1:
        raise UsageError(
            f"{host!r} names more than one address; pass one address, e.g. --host 127.0.0.1"
        )
    return adj


def cannot_listen(host: str, port: int, exc: OSError) -> UsageError:
    return UsageError(
        f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another service "
        "using it? pass another --port"
    )


def _bind(db_path: str | Path, host: str, port: int, settings: ServerSettings, *,
          sock: socket.socket | None = None, send_mail: bool = True) -> RunningServer:
    """The service on ``db_path``, listening on ``host``:``port``, or on ``sock``, a
    socket listening already (a worker of ``xlstock serve --workers``); it sends the
    low-stock e-mails when ``settings`` name an SMTP server and ``send_mail``."""
    adj = adjustments(host, port, settings)
    store = StockStore(db_path, daily_quota=settings.daily_quota,
                       low_stock_mail=settings.mail is not None)
    where: dict[str, Any] = {"sockinfo": adj.listen[0]}
    if sock is not None:
        where = {"_sock": sock, "bind_socket": False,
                 "sockinfo": (sock.family, sock.type, sock.proto, sock.getsockname())}
    try:
        server = GuardedServer(
            create_app(store, max_body=settings.max_body), adj=adj, map={},
            header_timeout=settings.header_timeout, request_timeout=settings.request_timeout,
            **where,
        )
    except OSError as exc:
        store.close()
        raise cannot_listen(host, port, exc) from exc
    except ValueError as exc:
        store.close()
        raise UsageError(
            f"cannot listen on {host!r}:{port} ({exc}); pass another --host"
        ) from exc
    running = RunningServer(store, server)
    if send_mail:
        running.start_mail(settings.mail)
    return running


def start_background_server(
    db_path: str | Path, host: str = DEFAULT_HOST, port: int = 0, *,
    max_body: int = DEFAULT_MAX_BODY, settings: ServerSettings | None = None,
) -> RunningServer:
    """Start the service in a daemon thread (port 0: a free port) and return at once.

    Use ``.url`` to reach it and ``.stop()`` (or ``with``) to stop it.
    """
    settings = settings or ServerSettings(max_body=max_body)
    running = _bind(db_path, host, port, settings)
    thread = threading.Thread(
        target=running.serve_forever, name=f"xlstock-service-{running.port}", daemon=True
    )
    running._thread = thread
    thread.start()
    return running


def serve(
    db_path: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
    max_body: int = DEFAULT_MAX_BODY, ready: Any = None,
    settings: ServerSettings | None = None, sock: socket.socket | None = None,
    supervisor: int | None = None, send_mail: bool = True,
) -> None:
    """Run the service in this thread until Ctrl-C or SIGTERM (signals are caught only
    when this is the main thread; elsewhere, stop it through ``ready``'s server).

    ``ready``, if given, is called with the :class:`RunningServer` once it listens.
    A worker of ``xlstock serve --workers`` (:mod:`xlstock.server.workers`) passes the
    listening ``sock`` it shares with the others, its ``supervisor``'s process id, and
    ``send_mail`` for the one worker that sends the low-stock e-mails.
    """
    running = _bind(db_path, host, port, settings or ServerSettings(max_body=max_body),
                    sock=sock, send_mail=send_mail)
    running.supervisor = supervisor

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        running.request_stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if supervisor is None:
            log.info("xlstock stock service on %s (database %s)", running.url,
                     running.store.description)
        if ready is not None:
            ready(running)
        running.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if supervisor is None:
        log.info("stock service stopped")
