"""Network failures named for what they are (index/http.py), each caused for real on
127.0.0.1: a closed port, a server that never answers, one that speaks TLS to a plain client or
plain text to a TLS client, one that answers garbage, a certificate that does not verify, and a
`.invalid` host (RFC 2606: never resolves). Messages are exact."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envspec.errors import IndexError_
from envspec.index.auth import Credentials
from envspec.index.http import Client

TLS = Path(__file__).parent / "support" / "tls"


def client(timeout: float = 0.5) -> Client:
    return Client(Credentials([], {}), retries=2, backoff=0.01, timeout=timeout)


@contextlib.contextmanager
def serve(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 running `handle` per connection, for a bounded time."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_run, args=(handle, conn), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        listener.close()


def _run(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):
        handle(conn)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def failure(url: str, timeout: float = 0.5) -> str:
    with pytest.raises(IndexError_) as caught:
        client(timeout).get(url)
    return str(caught.value)


def test_dns_failure_is_named_at_once() -> None:
    started = time.monotonic()
    message = failure("https://download.example.invalid/simple/x/")
    assert message == (
        "GET https://download.example.invalid/simple/x/ failed: "
        "cannot resolve host download.example.invalid"
    )
    assert time.monotonic() - started < 5  # not retried: a name that does not resolve stays so


def test_connection_refused() -> None:
    port = closed_port()
    assert failure(f"http://127.0.0.1:{port}/simple/x/") == (
        f"GET http://127.0.0.1:{port}/simple/x/ failed: "
        f"connection refused by 127.0.0.1:{port} after 2 attempts"
    )


def test_a_server_that_never_answers_times_out() -> None:
    with serve(lambda conn: time.sleep(1.5)) as port:
        assert failure(f"http://127.0.0.1:{port}/simple/x/", timeout=0.2) == (
            f"GET http://127.0.0.1:{port}/simple/x/ failed: "
            f"timed out: no answer from 127.0.0.1:{port} in 0.2 s after 2 attempts"
        )


def test_garbage_is_not_http() -> None:
    def garbage(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n")

    with serve(garbage) as port:
        assert failure(f"http://127.0.0.1:{port}/simple/x/") == (
            f"GET http://127.0.0.1:{port}/simple/x/ failed: "
            f"127.0.0.1:{port} answered something that is not HTTP"
        )


def test_https_to_a_plain_server_is_a_tls_failure() -> None:
    def plain(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with serve(plain) as port:
        assert failure(f"https://127.0.0.1:{port}/simple/x/") == (
            f"GET https://127.0.0.1:{port}/simple/x/ failed: TLS failure with "
            f"127.0.0.1:{port}: the server does not speak TLS (is the URL http://?)"
        )


def _tls(conn: socket.socket) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
    with context.wrap_socket(conn, server_side=True) as tls:
        tls.recv(65536)


def test_a_certificate_that_does_not_verify() -> None:
    with serve(_tls) as port:
        assert failure(f"https://127.0.0.1:{port}/simple/x/") == (
            f"GET https://127.0.0.1:{port}/simple/x/ failed: TLS failure with "
            f"127.0.0.1:{port}: certificate verify failed (self-signed certificate)"
        )


def test_http_to_a_tls_server_resets_the_connection() -> None:
    with serve(_tls) as port:
        assert failure(f"http://127.0.0.1:{port}/simple/x/") == (
            f"GET http://127.0.0.1:{port}/simple/x/ failed: "
            f"connection reset by 127.0.0.1:{port} after 2 attempts"
        )


def test_a_server_that_hangs_up_without_answering() -> None:
    with serve(lambda conn: conn.recv(65536) and None) as port:
        assert failure(f"http://127.0.0.1:{port}/simple/x/") == (
            f"GET http://127.0.0.1:{port}/simple/x/ failed: "
            f"127.0.0.1:{port} closed the connection without answering after 2 attempts"
        )


def test_http_status() -> None:
    def status(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")

    with serve(status) as port:
        assert failure(f"http://u:secret@127.0.0.1:{port}/simple/x/") == (
            f"GET http://127.0.0.1:{port}/simple/x/ failed: HTTP 418"
        )
