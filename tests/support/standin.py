"""What the shop platforms' stand-ins share: real HTTP on 127.0.0.1 in a thread, and the
faults a test places (an error answer, a lost answer)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

Self = TypeVar("Self", bound="LoopbackStandIn")


class LoopbackStandIn:
    """A stand-in's server and its placed faults. A subclass calls :meth:`_start_serving` with
    its request handler once its own state is ready; its handler asks
    :meth:`take_fault` before executing a request, and :meth:`take_drop` before
    answering one."""

    thread_name = "standin"

    def _start_serving(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._fault_lock = threading.Lock()
        self._faults: list[tuple[int, float | None, str | None]] = []
        self._drop_next = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=self.thread_name)
        self._thread.start()

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None,
                  method: str | None = None) -> None:
        """The next ``times`` API requests (of ``method`` alone, when given: ``"POST"``
        for the writes) are answered ``status`` (429 or 5xx) with the platform's body for
        it, executing nothing."""
        with self._fault_lock:
            self._faults.extend([(status, retry_after, method)] * times)

    def drop_next_answer(self) -> None:
        """The next API request is executed (a write IS applied) but the connection is
        closed before any byte of the answer: a lost answer."""
        with self._fault_lock:
            self._drop_next = True

    def take_fault(self, method: str | None = None) -> tuple[int, float | None] | None:
        """The fault placed for the request at hand (a ``method`` one, or any)."""
        with self._fault_lock:
            for index, (status, retry_after, only) in enumerate(self._faults):
                if only is None or only == method:
                    del self._faults[index]
                    return status, retry_after
            return None

    def take_drop(self) -> bool:
        with self._fault_lock:
            drop, self._drop_next = self._drop_next, False
            return drop


def drop_connection(handler: BaseHTTPRequestHandler) -> None:
    """Close the request's connection without a byte of the answer."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
