"""Limits on the socket, over a real socket against `cartwheel serve`: a slowloris, an
oversized header, a trickling body and idle keep-alive connections are closed on time, and
1,100 idle connections against a server limited to 1,024 descriptors do not keep a normal
request from being served (bandit.http.connections)."""

from __future__ import annotations

import resource
import socket
import time

import pytest
from server_helpers import Server, config_file

pytestmark = pytest.mark.system
# the header timeout shorter than the idle one: a test of the first sees it, not the second
LIMITS = {"header_timeout_s": 1.0, "idle_timeout_s": 3.0, "body_timeout_s": 1.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    srv = Server(tmp / "data", config_file(tmp, server=LIMITS))
    yield srv
    srv.stop()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading what it sent), failing after
    ``seconds``."""
    sock.settimeout(seconds)
    started = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return time.monotonic() - started


def _decide_ok(srv) -> bool:
    return srv.post("/v1/decide", {"visitor_id": "normal", "context": {}})[0] == 200


def test_a_slowloris_is_closed_after_the_header_timeout(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 4:  # one more header line every 0.2 s, never the end
        try:
            sock.sendall(b"X-a: b\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.2)
    assert closed or _closed_within(sock, 1.0) < 1.0
    assert time.monotonic() - started < 2.5  # 1 s allowed; the drip never reset it
    assert _decide_ok(server)


def test_an_oversized_header_is_closed_at_once(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-pad: " + b"a" * 40_000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert _closed_within(sock, 0.9) < 0.9  # before the header timeout: the size closed it


def test_a_trickling_body_gets_408_and_idle_keep_alive_is_closed(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"visitor_id\"")
    sock.settimeout(5)
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    # a complete exchange, then silence: closed after the idle timeout
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert 2.0 < _closed_within(sock, 6.0) < 5.0


def test_idle_connections_do_not_starve_a_normal_request(tmp_path):
    """1,100 connections that send nothing, against a server whose process may hold 1,024
    descriptors: the oldest waiting ones make room, and a normal request is served at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.fail(f"this test opens 1,100 sockets: raise the hard descriptor limit ({hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300) if hard == resource.RLIM_INFINITY
                                                else min(max(soft, 1300), hard), hard))
    srv = Server(tmp_path / "data", config_file(tmp_path, server={"header_timeout_s": 30.0}),
                 files_limit=1024)
    idle = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", srv.port)))
        started = time.monotonic()
        assert _decide_ok(srv)
        assert time.monotonic() - started < 5.0
        status, text = srv.request("GET", "/metrics")
        refused = [line for line in text.splitlines()
                   if line.startswith("cartwheel_connections_refused_total")]
        assert refused and sum(float(line.split()[-1]) for line in refused) >= 100, refused
    finally:
        for sock in idle:
            sock.close()
        srv.stop()
