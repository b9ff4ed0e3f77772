"""The server's HTTP/1.1 handling seen from a raw socket: what httpx never sends but clients may."""

from __future__ import annotations

import json
import socket
import tracemalloc

import httpx
import pytest

from buttress.testing import Fault, Upstream
from buttress.testing._engine import bind_socket
from buttress.testing._http import MAX_HEAD, BadRequest, RequestParser
from tests.testing._wait import wait_for_calls


def _exchange(up: Upstream, data: bytes, *, until_closed: bool = True) -> bytes:
    """Send raw bytes and read the answer (until the server closes, or until one response is in)."""
    with socket.create_connection(("127.0.0.1", up.port()), timeout=5.0) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            received += chunk
            if not chunk or (not until_closed and b"\r\n\r\n" in received):
                return received


def _bodies(raw: bytes) -> list[dict[str, object]]:
    """The JSON bodies of consecutive responses with Content-Length."""
    bodies = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"content-length"))[15:])
        bodies.append(json.loads(rest[:length]))
        raw = rest[length:]
    return bodies


def test_pipelined_requests_are_answered_in_order(upstream: Upstream) -> None:
    raw = _exchange(
        upstream, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert [body["path"] for body in _bodies(raw)] == ["/a", "/b"]


def test_http_10_closes_unless_asked_to_keep_alive(upstream: Upstream) -> None:
    raw = _exchange(upstream, b"GET /old HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" in raw
    kept = _exchange(upstream, b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", until_closed=False)
    assert b"connection: close" not in kept


def test_chunked_request_body_is_counted(upstream: Upstream) -> None:
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    raw = _exchange(
        upstream,
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body,
    )
    assert _bodies(raw)[0]["body_bytes"] == 11


def test_expect_100_continue_is_answered_before_the_body(upstream: Upstream) -> None:
    head = b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    with socket.create_connection(("127.0.0.1", upstream.port()), timeout=5.0) as sock:
        sock.sendall(head)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        assert b'"body_bytes":4' in sock.recv(65536)


def test_absolute_form_target_and_head(upstream: Upstream) -> None:
    raw = _exchange(
        upstream, b"GET http://example.test/abs?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert _bodies(raw)[0]["path"] == "/abs"
    head = _exchange(upstream, b"HEAD /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert b"content-length: 10\r\n" in head
    assert upstream.calls(path="/bytes/10") == 1


def test_no_body_statuses_and_bad_route_arguments(upstream: Upstream) -> None:
    no_content = _exchange(upstream, b"GET /status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert no_content.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert no_content.endswith(b"\r\n\r\n")
    assert b"content-length" not in no_content
    for path in (b"/status/99", b"/status/abc", b"/bytes/-1", b"/bytes/268435457"):
        raw = _exchange(upstream, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert _bodies(raw)[0]["error"] == "bad_request"


@pytest.mark.parametrize(
    "data",
    [
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: no\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
    ],
)
def test_malformed_requests_get_400_and_close(upstream: Upstream, data: bytes) -> None:
    raw = _exchange(upstream, data)
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert raw.endswith(b"bad request")
    assert upstream.calls() == 0


def test_parser_takes_bytes_one_at_a_time() -> None:
    parser = RequestParser()
    data = (
        b"\r\nPOST /p?x=1 HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nX-Dup: 2\r\nContent-Length: 3\r\n"
        b"Content-Length: 3\r\n\r\nabc"
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
    )
    requests = []
    for byte in data:
        parser.feed(bytes([byte]))
        while (request := parser.next()) is not None:
            requests.append(request)
    assert [(r.method, r.target, r.body_bytes, r.keep_alive) for r in requests] == [
        ("POST", "/p?x=1", 3, True),
        ("POST", "/c", 3, True),
    ]
    assert requests[0].headers["x-dup"] == "1, 2"


def test_parser_limits_and_keep_alive_rules() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD)
    with pytest.raises(BadRequest, match="too large"):
        parser.next()
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n")
    with pytest.raises(BadRequest, match="too large"):
        parser.next()
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * (MAX_HEAD + 1))
    with pytest.raises(BadRequest, match="chunk line"):
        parser.next()
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n")
    smuggled = parser.next()
    assert smuggled is not None
    assert not smuggled.keep_alive


def test_requests_sent_during_a_delay_wait_their_turn(upstream: Upstream) -> None:
    upstream.route("default", "/slow", Fault(latency=0.2))
    with socket.create_connection(("127.0.0.1", upstream.port()), timeout=5.0) as sock:
        sock.sendall(b"HEAD /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for_calls(upstream, 1)  # the next request arrives while the first one waits
        sock.sendall(b"GET /slow/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: " in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert _bodies(rest)[0]["path"] == "/slow/2"


def test_large_bodies_stream_without_building_them(upstream: Upstream, client: httpx.Client) -> None:
    tracemalloc.start()
    try:
        total = 0
        with client.stream("GET", upstream.url(path="/bytes/67108864")) as response:
            for chunk in response.iter_raw():
                total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 64 * 1024 * 1024
    assert peak < 8 * 1024 * 1024


def test_a_client_leaving_mid_body_does_not_disturb_the_server(
    upstream: Upstream, client: httpx.Client
) -> None:
    with socket.create_connection(("127.0.0.1", upstream.port()), timeout=5.0) as sock:
        sock.sendall(b"GET /bytes/268435456 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.get(upstream.url(path="/after")).status_code == 200
    assert upstream.outcomes() == {"200": 2}


def test_a_taken_port_is_reported_and_the_socket_closed() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError, match="in use"):
            bind_socket(holder.getsockname()[1])
