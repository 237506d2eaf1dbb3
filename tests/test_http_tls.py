"""HTTPS through the client (index/http.py): the system's trust store decides (OpenSSL's
defaults, so `SSL_CERT_FILE` is honoured), and it is loaded once per client, not once per
connection (a cold lock opens ~20). Real TLS servers on 127.0.0.1 with a certificate for that
address."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from envspec.errors import IndexError_
from envspec.index.auth import Credentials
from envspec.index.http import Client

TLS = Path(__file__).parent / "support" / "tls"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def tls_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "ip-cert.pem", TLS / "ip-key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _client() -> Client:
    return Client(Credentials([], {}), retries=1, backoff=0.01, timeout=5)


def test_the_trust_store_is_loaded_once_for_every_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "ip-cert.pem"))
    loads: list[object] = []
    load = ssl.SSLContext.load_default_certs

    def counted(self: ssl.SSLContext, *args: object) -> None:
        loads.append(self)
        load(self, *args)

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", counted)
    client = _client()
    with tls_server() as one, tls_server() as two:  # two hosts: two pools, two connections
        for port in (one, two, one):
            assert client.get(f"https://127.0.0.1:{port}/simple/x/").status == 200
    client.close()
    assert len(loads) == 1


def test_a_certificate_outside_the_trust_store_is_refused() -> None:
    with tls_server() as port, pytest.raises(IndexError_) as caught:
        _client().get(f"https://127.0.0.1:{port}/simple/x/")
    assert str(caught.value) == (
        f"GET https://127.0.0.1:{port}/simple/x/ failed: TLS failure with 127.0.0.1:{port}: "
        "certificate verify failed (self-signed certificate)"
    )
