"""Idle clients for the connection-cap tests and bench (tests/test_server_busy.py,
bench/bench_connections.py): ``python reconnector.py PORT COUNT SECONDS`` opens COUNT
connections, prints ``open``, and for SECONDS reconnects each one the service drops; then
prints how many reconnects it made."""

import selectors
import socket
import sys
import time


def main() -> None:
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    watch = selectors.DefaultSelector()

    def open_one() -> None:
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                time.sleep(0.01)
                continue
            sock.setblocking(False)
            watch.register(sock, selectors.EVENT_READ)
            return

    for _ in range(count):
        open_one()
    print("open", flush=True)
    reconnects, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in watch.select(0.1):
            try:
                data = key.fileobj.recv(4096)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if not data:
                watch.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                reconnects += 1
                open_one()
    print("reconnects", reconnects, flush=True)


if __name__ == "__main__":
    main()
