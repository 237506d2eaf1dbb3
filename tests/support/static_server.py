"""A plain static file server on 127.0.0.1 for bundle tests: the stdlib's
`SimpleHTTPRequestHandler` over one folder (what `python -m http.server` runs), in a daemon
thread, recording each request's path, with optional basic auth. No index logic at all: a
bundle must work from a server that knows nothing of Python packaging.
"""

from __future__ import annotations

import base64
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.record(self.path)
        if not self._authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="bundle"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def _authorized(self) -> bool:
        auth = self.server.auth
        if auth is None:
            return True
        token = base64.b64encode(":".join(auth).encode()).decode()
        return self.headers.get("Authorization") == f"Basic {token}"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads `paths`, not stderr


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.paths: list[str] = []
        self.auth: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def record(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)


class StaticServer:
    """Serves `folder` until stopped; use as a context manager."""

    def __init__(self, folder: Path, auth: tuple[str, str] | None = None) -> None:
        self._httpd = _Server(partial(_Handler, directory=str(folder)))
        self._httpd.auth = auth
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def url_with_auth(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self._httpd.server_address[1]}/"

    @property
    def paths(self) -> list[str]:
        return list(self._httpd.paths)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
