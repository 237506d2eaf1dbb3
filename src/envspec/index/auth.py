"""Index credentials: where they come from, which host they go to, and keeping them out of
every URL we log, cache or show.

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
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from envspec.errors import IndexError_
from envspec.model import Index, strip_credentials

log = logging.getLogger(__name__)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def redact(url: str) -> str:
    """`url` without userinfo: the only form of a URL we ever log, cache or show."""
    return strip_credentials(url)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def expand_env(url: str, environ: Mapping[str, str], context: str = "") -> str:
    """Replace `${VAR}` references in an index URL; a missing variable is an error."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in environ:
            raise IndexError_(
                f"environment variable {match[1]} is not set",
                context=context,
                hint=f"set {match[1]} or remove ${{{match[1]}}} from the index URL",
            )
        return environ[match[1]]

    return _ENV_REF.sub(value, url)


def env_prefix(index_name: str) -> str:
    return "ENVSPEC_INDEX_" + re.sub(r"[-.]", "_", index_name).upper()


def with_env_login(url: str, index_name: str, environ: Mapping[str, str]) -> str:
    """`url` with `ENVSPEC_INDEX_<NAME>_USERNAME/_PASSWORD` as its userinfo when it has none:
    how uv, which knows nothing of those variables, gets an index's credentials."""
    parts = urlsplit(url)
    user = environ.get(f"{env_prefix(index_name)}_USERNAME")
    password = environ.get(f"{env_prefix(index_name)}_PASSWORD")
    if parts.username is not None or not (user or password):
        return url
    login = f"{quote(user or '', safe='')}:{quote(password or '', safe='')}"
    return urlunsplit(parts._replace(netloc=f"{login}@{parts.netloc}"))


def clean_index(index: Index, environ: Mapping[str, str]) -> tuple[Index, Index]:
    """(index with `${VAR}`s expanded, for credentials; the same without credentials, with a
    local flat path turned into a file:// folder URL)."""
    expanded = expand_env(index.url, environ, context=f"indexes.{index.name}")
    full = Index(name=index.name, url=expanded, explicit=index.explicit, flat=index.flat)
    url = redact(full.url)
    if len(urlsplit(url).scheme) <= 1:  # a path (or a Windows drive letter)
        url = Path(url).resolve().as_uri()
    if index.flat and url.startswith("file:") and Path(urlsplit(url).path).is_dir():
        url = url.rstrip("/") + "/"
    clean = Index(name=index.name, url=url, explicit=index.explicit, flat=index.flat)
    return full, clean


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
        key = origin(index.url)
        self._index_of_origin.setdefault(key, index.name)
        parts = urlsplit(index.url)
        prefix = env_prefix(index.name)
        if parts.username is not None or parts.password is not None:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
        elif f"{prefix}_USERNAME" in environ or f"{prefix}_PASSWORD" in environ:
            user = environ.get(f"{prefix}_USERNAME", "")
            password = environ.get(f"{prefix}_PASSWORD", "")
        else:
            return
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
