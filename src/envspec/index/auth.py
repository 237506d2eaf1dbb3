"""Index credentials: where they come from and which host they go to. (Keeping them out of
every URL we log, cache or show is `envspec.secret`'s.)

Sources, first found wins per index: the index URL's userinfo, then the environment
(`ENVSPEC_INDEX_<NAME>_USERNAME` / `_PASSWORD`, NAME upper-cased with `-` and `.` as `_`), then
netrc (`$NETRC`, else `~/.netrc` / `~/_netrc`) by host. Index credentials apply to requests to
that index's scheme+host+port only; netrc entries apply to any host they name, as in pip.
Hand-written because it is a few dozen lines over the stdlib `netrc` module and no library
knows our environment-variable convention.
"""

from __future__ import annotations

import base64
import logging
import netrc
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from envspec.model import Index
from envspec.secret import SecretURL

log = logging.getLogger(__name__)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def env_prefix(index_name: str) -> str:
    return "ENVSPEC_INDEX_" + re.sub(r"[-.]", "_", index_name).upper()


def env_login(index_name: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """`ENVSPEC_INDEX_<NAME>_USERNAME/_PASSWORD` (either may be missing), or None."""
    prefix = env_prefix(index_name)
    if f"{prefix}_USERNAME" not in environ and f"{prefix}_PASSWORD" not in environ:
        return None
    return environ.get(f"{prefix}_USERNAME", ""), environ.get(f"{prefix}_PASSWORD", "")


def uv_url(index: Index, environ: Mapping[str, str]) -> SecretURL:
    """The index's URL with its environment login put in when it carries none: how uv, which
    knows nothing of `ENVSPEC_INDEX_*`, gets an index's credentials."""
    login = env_login(index.name, environ)
    return index.location.with_login(*login) if login else index.location


def public_index(index: Index) -> Index:
    """`index` as the Finder and the downloads key and show it: its public URL, a local flat
    path turned into a file:// URL (a folder's with its `/`)."""
    url = index.location.public
    if len(urlsplit(url).scheme) <= 1:  # a path (or a Windows drive letter)
        url = Path(url).resolve().as_uri()
    if index.flat and url.startswith("file:") and Path(urlsplit(url).path).is_dir():
        url = url.rstrip("/") + "/"
    return Index(name=index.name, url=url, explicit=index.explicit, flat=index.flat)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Login:
    username: str
    password: str
    index: str

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


class Credentials:
    """Credentials for the indexes of a spec, looked up by request URL."""

    def __init__(self, indexes: Sequence[Index], environ: Mapping[str, str]) -> None:
        self._by_origin: dict[tuple[str, str, int | None], _Login] = {}
        self._index_of_origin: dict[tuple[str, str, int | None], str] = {}
        self._netrc = load_netrc(environ)
        for index in indexes:
            self._add(index, environ)

    def _add(self, index: Index, environ: Mapping[str, str]) -> None:
        key = origin(index.location.public)
        self._index_of_origin.setdefault(key, index.name)
        found = index.location.login() or env_login(index.name, environ)
        if found is None:
            return
        user, password = found
        self._by_origin.setdefault(key, _Login(username=user, password=password, index=index.name))

    def authorization(self, url: str) -> str | None:
        """The `Authorization` header value for a request to `url`, if any."""
        login = self._by_origin.get(origin(url))
        if login is not None:
            return login.header()
        host = origin(url)[1]
        found = self._netrc.authenticators(host) if self._netrc and host else None
        if found is not None:
            user, _account, password = found
            return _Login(username=user, password=password or "", index="").header()
        return None

    def hint(self, url: str) -> str:
        """How to give credentials for the host of `url`."""
        name = self._index_of_origin.get(origin(url))
        env = env_prefix(name) if name else "ENVSPEC_INDEX_<NAME>"
        return f"give credentials in the index URL, in netrc, or as {env}_USERNAME/_PASSWORD"


def load_netrc(environ: Mapping[str, str]) -> netrc.netrc | None:
    """The user's netrc ($NETRC, else ~/.netrc or ~/_netrc), or None when absent or unreadable."""
    if environ.get("NETRC"):
        candidates = [Path(environ["NETRC"])]
    else:
        home = Path(environ.get("HOME") or os.path.expanduser("~"))
        candidates = [home / ".netrc", home / "_netrc"]
    for path in candidates:
        if path.is_file():
            try:
                return netrc.netrc(str(path))
            except (netrc.NetrcParseError, OSError) as exc:
                log.warning("ignoring unreadable netrc %s: %s", path, exc.__class__.__name__)
                return None
    return None
