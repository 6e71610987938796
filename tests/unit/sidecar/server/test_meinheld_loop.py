"""Raw responses of resumed requests: written without ever blocking meinheld's loop."""

from __future__ import annotations

import logging
import socket

import greenlet
import pytest

from sidecar.server import meinheld_loop


@pytest.fixture
def stalled_pair():
    """A non-blocking server socket whose peer reads nothing, its send buffer already full."""
    server_end, client_end = socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server_end.setblocking(False)
    try:
        while True:
            server_end.send(b"x" * 4096)
    except BlockingIOError:
        pass
    yield server_end, client_end
    server_end.close()
    client_end.close()


class FakeLoop:
    """Stands in for meinheld.server: records scheduled calls instead of running a loop."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, object]] = []

    def schedule_call(self, seconds, callback, *args):
        self.calls.append((seconds, callback))


def _drain(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    chunks = []
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


def test_a_full_socket_yields_to_the_loop_instead_of_blocking_it(stalled_pair, monkeypatch):
    server_end, client_end = stalled_pair
    loop = FakeLoop()
    monkeypatch.setattr(meinheld_loop, "server", loop)
    # Were the write to wait on the socket in place, it would give up (raise) after this long.
    monkeypatch.setattr(meinheld_loop, "WRITE_TIMEOUT", 0.05)
    clock = iter([100.0, 100.01])
    monkeypatch.setattr(meinheld_loop, "monotonic", lambda: next(clock))
    done = []
    handler = greenlet.greenlet(
        lambda: done.append(meinheld_loop._write_all(server_end.fileno(), b"response"))
    )

    handler.switch()  # runs until it hands control back to this "hub"

    assert not done and not handler.dead
    assert [(s, cb) for s, cb in loop.calls] == [(1, handler.switch)]
    received = _drain(client_end)  # the client reads at last
    assert received
    loop.calls[0][1]()  # the loop's timer turn: the handler retries and finishes
    assert handler.dead and done == [None]
    assert _drain(client_end).endswith(b"response")


def test_a_client_that_never_reads_is_given_up_after_the_write_timeout(stalled_pair, monkeypatch):
    server_end, _ = stalled_pair
    loop = FakeLoop()
    monkeypatch.setattr(meinheld_loop, "server", loop)
    clock = iter([100.0, 100.0 + meinheld_loop.WRITE_TIMEOUT])
    monkeypatch.setattr(meinheld_loop, "monotonic", lambda: next(clock))
    errors = []

    def write():
        try:
            meinheld_loop._write_all(server_end.fileno(), b"response")
        except TimeoutError as exc:
            errors.append(exc)

    handler = greenlet.greenlet(write)
    handler.switch()
    loop.calls[0][1]()  # a timer turn WRITE_TIMEOUT later: still full
    assert handler.dead and len(loop.calls) == 1
    assert "did not read its response within" in str(errors[0])


def test_an_undelivered_response_is_logged_with_its_reason(monkeypatch, caplog):
    def stalled(fd, data):
        raise TimeoutError("the client did not read its response within 10s")

    monkeypatch.setattr(meinheld_loop, "_write_all", stalled)

    class Client:
        closed = 0

        def get_fd(self):
            return -1

        def set_closed(self, value):
            self.closed = value

    client = Client()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    def handle():
        greenlet.getcurrent().weir_suspended = True
        environ = {"meinheld.client": client, "SERVER_PROTOCOL": "HTTP/1.1"}
        return meinheld_loop.wrap(app)(environ, lambda *a: None)

    with caplog.at_level(logging.INFO, logger="sidecar.server.meinheld_loop"):
        assert greenlet.greenlet(handle).switch() == []
    assert client.closed == 1
    assert "did not read its response within 10s" in caplog.text
    assert "None" not in caplog.text


@pytest.mark.parametrize(
    ("keep", "connection"), [(True, b"Connection: Keep-Alive"), (False, b"Connection: close")]
)
def test_a_raw_response_replaces_content_length_and_says_whether_the_connection_stays(
    keep, connection
):
    headers = [("Content-Type", "application/json"), ("content-length", "999"), ("X-A", "1")]
    assert meinheld_loop.raw_response("200 OK", headers, b"{}", keep) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: 1\r\n"
        b"Content-Length: 2\r\n" + connection + b"\r\n\r\n{}"
    )


def test_a_response_larger_than_the_socket_buffer_is_written_in_parts(monkeypatch):
    server_end, client_end = socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server_end.setblocking(False)
    loop = FakeLoop()
    monkeypatch.setattr(meinheld_loop, "server", loop)
    data = bytes(range(256)) * 1024  # far more than both buffers: the first write is partial
    done = []
    handler = greenlet.greenlet(
        lambda: done.append(meinheld_loop._write_all(server_end.fileno(), data))
    )
    received = b""
    try:
        handler.switch()
        while not handler.dead:
            received += _drain(client_end)
            loop.calls.pop()[1]()
        received += _drain(client_end)
    finally:
        server_end.close()
        client_end.close()
    assert done == [None] and received == data
