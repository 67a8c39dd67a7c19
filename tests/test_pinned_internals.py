"""The internals of waitress and urllib3 that xlstock subclasses (issue 23, point 5):
``GuardedServer`` (xlstock/server/runner.py) and the HTTP deadline's connections
(xlstock/remote/transport.py). pyproject.toml pins both below their next major; these
tests fail loudly, naming the attribute, when a release within the pin drops or renames
one, instead of the guard silently doing nothing."""

from __future__ import annotations

import inspect
import socket
import time

import requests
import urllib3.connection
import urllib3.connectionpool
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from xlstock.remote import transport
from xlstock.server import runner

WAITRESS_OVERRIDES = {
    runner.GuardedServer: (TcpWSGIServer, ("readable", "handle_accept", "maintenance",
                                           "channel_class")),
    runner._GuardedChannel: (HTTPChannel, ("parser_class", "error_task_class")),
    runner._JsonErrorTask: (ErrorTask, ("execute", "set_close_on_finish", "write")),
    runner._TimedParser: (HTTPRequestParser, ("__init__",)),
}
URLLIB3_OVERRIDES = {
    transport._WatchedHTTPConnection: (urllib3.connection.HTTPConnection,
                                       ("connect", "request", "getresponse")),
    transport._WatchedHTTPSConnection: (urllib3.connection.HTTPSConnection,
                                        ("connect", "request", "getresponse")),
    transport._WatchedHTTPPool: (urllib3.connectionpool.HTTPConnectionPool,
                                 ("ConnectionCls",)),
    transport._WatchedHTTPSPool: (urllib3.connectionpool.HTTPSConnectionPool,
                                  ("ConnectionCls",)),
    transport.WatchedAdapter: (requests.adapters.HTTPAdapter, ("init_poolmanager",)),
}


def test_what_xlstock_overrides_still_exists_in_waitress_and_urllib3():
    for table in (WAITRESS_OVERRIDES, URLLIB3_OVERRIDES):
        for ours, (theirs, names) in table.items():
            assert issubclass(ours, theirs)
            for name in names:
                assert hasattr(theirs, name), (
                    f"{theirs.__module__}.{theirs.__qualname__}.{name} is gone: "
                    f"{ours.__qualname__} overrides or uses it (see pyproject.toml's pin)")
    # GuardedServer.readable replaces waitress's whole method: it must still be the one
    # that does the channel cleanup and the connection cap
    source = inspect.getsource(TcpWSGIServer.readable)
    for used in ("next_channel_cleanup", "maintenance", "connection_limit",
                 "in_connection_overflow"):
        assert used in source, f"waitress's readable() no longer uses {used}"


def test_the_attributes_guarded_server_reads_exist_on_a_live_connection(tmp_path):
    with runner.start_background_server(tmp_path / "s.db") as running:
        server = running._server
        assert isinstance(server, runner.GuardedServer)
        for name in ("active_channels", "_map", "accepting", "next_channel_cleanup",
                     "in_connection_overflow"):
            assert hasattr(server, name), f"waitress's server has no {name} any more"
        for name in ("cleanup_interval", "connection_limit"):
            assert hasattr(server.adj, name), f"waitress's Adjustments has no {name} any more"
        with socket.create_connection((running.host, running.port), timeout=10) as client:
            client.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # headers unfinished
            channels: list = []
            for _ in range(100):
                channels = list(server.active_channels.values())
                if channels and channels[0].request is not None:
                    break
                time.sleep(0.05)
            assert channels, "the connection never reached waitress's channel map"
            channel = channels[0]
            assert isinstance(channel, runner._GuardedChannel)
            for name in ("request", "requests", "total_outbufs_len", "will_close",
                         "close_when_flushed", "last_activity", "addr"):
                assert hasattr(channel, name), f"waitress's channel has no {name} any more"
            assert isinstance(channel.request, runner._TimedParser)
            assert channel.request.headers_finished is False
            assert not channel.idle()


def test_the_deadline_sees_the_sockets_of_a_real_request(stock_service):
    """The adapter's pools make xlstock's connections, whose sockets the deadline
    registers: were urllib3 to stop using ``ConnectionCls`` or requests'
    ``pool_classes_by_scheme``, no socket would be registered."""
    session = requests.Session()
    session.mount("http://", transport.WatchedAdapter())
    seen: list = []
    deadline = transport.Deadline(30)
    original = deadline.register

    def register(sock):
        seen.append(sock)
        original(sock)

    deadline.register = register  # type: ignore[method-assign]
    with deadline.watching():
        answer = session.get(stock_service.url + "/v1/health", timeout=30)
    assert answer.status_code == 200
    sockets = [sock for sock in seen if sock is not None]  # None: not connected yet
    assert sockets and all(isinstance(sock, socket.socket) for sock in sockets)
    pool = session.get_adapter(stock_service.url).poolmanager.connection_from_url(
        stock_service.url)
    assert isinstance(pool, transport._WatchedHTTPPool)
    session.close()
