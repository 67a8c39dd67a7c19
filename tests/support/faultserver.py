"""A misbehaving stock service for the client's tests.

:class:`FaultServer` is a real HTTP server on a free loopback port (a
``ThreadingHTTPServer`` in a thread: it is the test's fake, not the product), scripted
per route with :class:`Reply` objects that can misbehave on purpose: close the
connection before answering or in the middle of the body, drip bytes slowly, declare a
longer body than they send, answer HTML, redirect, or send far too much.

:class:`FakeStock` is a small, honest model of the protocol's stock and publish
endpoints (ETag, per-item ``from`` preconditions, idempotency keys, the outcome
endpoint) whose answers can be
lost on purpose, to prove that a publish whose answer never arrived is applied once.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

FAULTS = (
    "close_before_answer",  # read the request, then close without a byte of answer
    "reset_before_answer",  # read the request, then reset the connection (RST)
    "drop_mid_body",  # send the headers and half the body, then close
    "truncate",  # declare a Content-Length larger than the body sent, then close
    "drip_body",  # send the body one byte per drip_interval
    "drip_headers",  # send the status line and headers one byte per drip_interval
    "stall",  # send the headers, then nothing until the server stops
)


@dataclass
class Seen:
    """One request as the server received it (``body`` is inflated if it was gzip)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """One scripted answer. ``json`` (any value) or ``body`` (bytes, or an iterable of
    byte chunks) is the payload; ``framing`` is ``"length"`` (Content-Length),
    ``"close"`` (no length, the connection closes at the end) or ``"chunked"``."""

    status: int = 200
    json: Any = None
    body: bytes | Iterable[bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    fault: str | None = None
    drip_interval: float = 0.05
    gzip: bool = False
    framing: str = "length"

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {FAULTS}")


Responder = Reply | Callable[[Seen], Reply]


def error_reply(status: int, code: str, message: str, items: list[Any] | None = None) -> Reply:
    """An error answer in the protocol's shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if items is not None:
        error["items"] = items
    return Reply(status, json={"error": error})


class FaultServer:
    """The scriptable server. Use as a context manager, or call :meth:`close`.

    ``on(method, path, *replies)`` queues answers for a route; the last one repeats.
    A path ending in ``/*`` matches any path under it. Every request is recorded in
    ``seen``; unscripted routes answer 404 ``not_found``.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._routes: dict[tuple[str, str], list[Responder]] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        server = _QuietServer(("127.0.0.1", 0), _Handler)
        server.fault_server = self
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def on(self, method: str, path: str, *replies: Responder) -> FaultServer:
        if not replies:
            raise ValueError("give at least one reply")
        with self._lock:
            self._routes[(method.upper(), path)] = list(replies)
        return self

    def requests_to(self, method: str, path: str) -> list[Seen]:
        """The requests received for one route (exact path)."""
        with self._lock:
            return [s for s in self.seen if s.method == method.upper() and s.path == path]

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            queue = self._routes.get((seen.method, seen.path))
            if queue is None:
                for (method, pattern), candidate in self._routes.items():
                    if (
                        method == seen.method
                        and pattern.endswith("/*")
                        and seen.path.startswith(pattern[:-1])
                    ):
                        queue = candidate
                        break
            if queue is None:
                return error_reply(404, "not_found", f"no route {seen.method} {seen.path}")
            responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return responder(seen) if callable(responder) else responder


class _QuietServer(ThreadingHTTPServer):
    """Handler threads are daemons; a client hanging up is expected, not an error."""

    daemon_threads = True
    fault_server: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultserver"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fault_server: FaultServer = self.server.fault_server  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        body = raw_body
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(raw_body)
        parts = urlsplit(self.path)
        seen = Seen(
            method=self.command,
            path=unquote(parts.path),
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_body=raw_body,
        )
        reply = fault_server._next_reply(seen)
        try:
            self._answer(reply, fault_server.stopping)
        except OSError:
            self.close_connection = True

    def _answer(self, reply: Reply, stopping: threading.Event) -> None:
        if reply.fault == "close_before_answer":
            self._hang_up()
            return
        if reply.fault == "reset_before_answer":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._hang_up()
            return
        if reply.body is None:
            payload = b"" if reply.json is None else json.dumps(reply.json).encode()
        elif isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = b"".join(reply.body) if reply.framing == "length" else b""
        if reply.gzip:
            if reply.body is not None and not isinstance(reply.body, bytes):
                raise ValueError("gzip needs the body as bytes")
            payload = gzip.compress(payload, mtime=0)
        head = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}"]
        headers = {"Content-Type": reply.content_type, "Server": "faultserver"}
        if reply.gzip:
            headers["Content-Encoding"] = "gzip"
        if reply.framing == "length":
            declared = len(payload) * 2 + 10 if reply.fault == "truncate" else len(payload)
            headers["Content-Length"] = str(declared)
        elif reply.framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Connection"] = "close"
        headers.update(reply.headers)
        head.extend(f"{name}: {value}" for name, value in headers.items())
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if reply.fault == "drip_headers":
            self._drip(head_bytes, reply.drip_interval, stopping)
        else:
            self.wfile.write(head_bytes)
        if reply.fault == "stall":
            while not stopping.wait(0.05):
                pass
            self._hang_up()
            return
        if reply.fault == "drop_mid_body":
            self.wfile.write(payload[: len(payload) // 2])
            self._hang_up()
            return
        if reply.fault == "drip_body":
            self._drip(payload, reply.drip_interval, stopping)
            self._hang_up()
            return
        if reply.framing == "length":
            self.wfile.write(payload)
        else:
            streamed = reply.body is not None and not isinstance(reply.body, bytes)
            chunks: Iterable[bytes] = reply.body if streamed else [payload]  # type: ignore[assignment]
            for chunk in chunks:
                if stopping.is_set():
                    break
                if not chunk:
                    continue
                if reply.framing == "chunked":
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
            if reply.framing == "chunked":
                self.wfile.write(b"0\r\n\r\n")
        if reply.fault == "truncate" or reply.framing == "close":
            self._hang_up()

    def _drip(self, data: bytes, interval: float, stopping: threading.Event) -> None:
        for index in range(len(data)):
            if stopping.wait(interval):
                return
            self.wfile.write(data[index : index + 1])

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _reason(status: int) -> str:
    return BaseHTTPRequestHandler.responses.get(status, ("Unknown",))[0]


class FakeStock:
    """An honest little model of the stock service for one shop, to install on a
    :class:`FaultServer`: ``GET /v1/stock``, ``PUT /v1/stock`` (each item's ``from``,
    an optional If-Match, idempotency keys with replay) and ``GET /v1/publishes/<key>``.

    ``lose_publish_answers`` is how many of the next publishes are applied and recorded
    but whose answer is never sent (the connection is closed instead);
    ``applications`` counts how many publishes actually changed the state.
    """

    def __init__(self, shop: str, levels: Mapping[str, int]) -> None:
        self.shop = shop
        self.levels = dict(levels)
        self.number = 1
        self.applications = 0
        self.lose_publish_answers = 0
        self.outcome_faults: list[Reply] = []
        self.publishes: dict[str, tuple[bytes, int, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @property
    def etag(self) -> str:
        return f'"v{self.number}"'

    def install(self, server: FaultServer) -> FakeStock:
        server.on("GET", "/v1/stock", self.read)
        server.on("PUT", "/v1/stock", self.publish)
        server.on("GET", "/v1/publishes/*", self.outcome)
        return self

    def document(self) -> dict[str, Any]:
        return {
            "format": "xlstock.stock",
            "format_version": 2,
            "shop": self.shop,
            "version": self.etag.strip('"'),
            "generated_at": "2026-11-27T10:00:00Z",
            "items": [
                {"sku": sku, "name": f"Product {sku}", "variant": "", "qty": qty}
                for sku, qty in sorted(self.levels.items())
            ],
        }

    def read(self, seen: Seen) -> Reply:
        with self._lock:
            if seen.headers.get("if-none-match") == self.etag:
                return Reply(304, headers={"ETag": self.etag})
            return Reply(200, json=self.document(), headers={"ETag": self.etag})

    def publish(self, seen: Seen) -> Reply:
        key = seen.headers.get("idempotency-key", "")
        with self._lock:
            if key in self.publishes:
                body, status, response = self.publishes[key]
                if body != seen.body:
                    return error_reply(422, "idempotency_key_reused", "key reused")
                headers = {"Idempotent-Replayed": "true"}
                if status == 200:
                    headers["ETag"] = f'"{response["version"]}"'
                return Reply(status, json=response, headers=headers)
            document = seen.json()
            moved = [
                {"sku": item["sku"], "problem": "moved", "planned_from": item["from"],
                 "current": self.levels[item["sku"]]}
                for item in document["items"] if self.levels[item["sku"]] != item["from"]
            ]
            if_match = seen.headers.get("if-match")
            if if_match is not None and if_match != self.etag:
                status, response = (
                    412,
                    {"error": {"code": "stale_version", "message": "levels changed"}},
                )
            elif moved:
                status, response = (
                    412,
                    {"error": {"code": "levels_moved", "message": "levels moved",
                               "items": moved}},
                )
            else:
                changes = []
                for item in document["items"]:
                    before = self.levels[item["sku"]]
                    if before != item["qty"]:
                        changes.append({"sku": item["sku"], "before": before, "after": item["qty"]})
                        self.levels[item["sku"]] = item["qty"]
                if changes:
                    self.number += 1
                self.applications += 1
                status, response = (
                    200,
                    {
                        "key": key,
                        "version": self.etag.strip('"'),
                        "published_at": "2026-11-27T10:05:00Z",
                        "changes": changes,
                    },
                )
            self.publishes[key] = (seen.body, status, response)
            if self.lose_publish_answers > 0:
                self.lose_publish_answers -= 1
                return Reply(fault="close_before_answer")
            return Reply(status, json=response, headers={"ETag": self.etag})

    def outcome(self, seen: Seen) -> Reply:
        if self.outcome_faults:
            return self.outcome_faults.pop(0)
        key = seen.path.rsplit("/", 1)[-1]
        with self._lock:
            if key not in self.publishes:
                return error_reply(404, "not_found", f"no publish with key {key}")
            _, status, response = self.publishes[key]
        return Reply(
            200,
            json={
                "key": key,
                "status": status,
                "applied": status == 200,
                "received_at": "2026-11-27T10:05:00Z",
                "response": response,
            },
        )


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` passes (for server-side effects)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class DroppingProxy:
    """A TCP relay in front of a real server that lets chosen requests reach it but
    swallows their answers: when a request starting with one of ``drop_prefixes``
    (e.g. ``b"PUT /v1/stock"``) has been relayed and the server starts answering, the
    relay hangs up on the client instead. ``drops`` caps how many answers are lost
    (``None``: every one); ``dropped`` counts them.
    """

    def __init__(
        self, upstream_port: int, drop_prefixes: tuple[bytes, ...], drops: int | None = 1
    ) -> None:
        self.upstream_port = upstream_port
        self.drop_prefixes = drop_prefixes
        self.drops = drops
        self.dropped = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _take_drop(self, data: bytes) -> bool:
        with self._lock:
            if not data.startswith(self.drop_prefixes):
                return False
            if self.drops is not None and self.dropped >= self.drops:
                return False
            self.dropped += 1
            return True

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        dropping = False
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for side in readable:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client:
                        dropping = dropping or self._take_drop(data)
                        upstream.sendall(data)
                    elif dropping:
                        return
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._accepter.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> DroppingProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
