"""How long a new client waits while idle connections past the cap reconnect as soon
as they are dropped (issue 19).

Run: ``python bench/bench_connections.py`` (``--cap 1000 --idle 1100 --clients 50``
are the defaults: the finding's figures, where new clients waited a median 3.9 s and
2 of 5 timed out).

It starts the stock service on loopback with ``--connections CAP``, opens ``IDLE``
connections from another process that send nothing and reconnect at once whenever the
service drops one, then times ``CLIENTS`` new clients, one after another, each asking
``GET /v1/health`` on a new connection (5 s timeout). It prints the median, the 95th
percentile and the slowest wait, the clients that timed out, and how many idle
connections the service closed to make room. The target is every client within 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from xlstock.server.runner import ServerSettings, start_background_server  # noqa: E402

TARGET_S = 1.0
RECONNECTOR = str(Path(__file__).resolve().parents[1] / "tests" / "support" / "reconnector.py")
"""The idle clients: open ``count`` connections, reconnect each one the service drops,
for ``seconds``. Also run by tests/test_server_busy.py."""


def measure(cap: int, idle: int, clients: int) -> tuple[list[float], int]:
    """The waits of ``clients`` new clients (``inf``: timed out) and the connections
    the service closed for room."""
    with tempfile.TemporaryDirectory() as folder, start_background_server(
        Path(folder) / "bench.db", settings=ServerSettings(connections=cap),
    ) as running:
        attacker = subprocess.Popen(
            [sys.executable, RECONNECTOR, str(running.port), str(idle), "600"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert attacker.stdout is not None
            if attacker.stdout.readline().strip() != "open":
                raise SystemExit("the idle clients could not connect")
            waits = []
            for _ in range(clients):
                started = time.monotonic()
                try:
                    requests.get(running.url + "/v1/health", timeout=5).raise_for_status()
                    waits.append(time.monotonic() - started)
                except requests.RequestException:
                    waits.append(float("inf"))
            return waits, getattr(running._server, "dropped_for_room", 0)
        finally:
            attacker.kill()
            attacker.communicate(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--clients", type=int, default=50)
    options = parser.parse_args()
    waits, dropped = measure(options.cap, options.idle, options.clients)
    done = sorted(w for w in waits if w != float("inf"))
    timed_out = len(waits) - len(done)
    p95 = done[max(0, int(len(done) * 0.95) - 1)] if done else float("inf")
    print(f"cap {options.cap}, {options.idle} idle connections reconnecting, "
          f"{options.clients} new clients:")
    print(f"  median {statistics.median(done) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
          f"slowest {max(done) * 1000:.1f} ms, timed out {timed_out}"
          if done else f"  all {timed_out} timed out")
    print(f"  idle connections closed for room: {dropped}")
    slowest = max(waits) if waits else float("inf")
    print(f"  target: every client within {TARGET_S:.0f} s: "
          f"{'met' if slowest < TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
