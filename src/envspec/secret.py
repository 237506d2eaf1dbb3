"""URLs that may carry credentials, and the one way credentials are kept out of text.

An index or mirror URL can hold a user name and a password, written in the spec or the mirror
settings directly or as ``${VAR}`` references. `expand` replaces those references once, at the
edge that reads the URL (the spec's parser, the mirror settings), from the environment snapshot
the CLI took. From there on the URL is a `SecretURL`: its `public` form (no userinfo) is what
every message, log line, cache key and lock holds; `secret` is read only where the credentials
go out — the HTTP client's `Authorization` header (`index.auth`) and the index variables of the
uv processes envspec starts. `with_login` gives a URL that has no userinfo the login found
elsewhere (`ENVSPEC_INDEX_<NAME>_USERNAME/_PASSWORD`), for uv, which knows nothing of those
variables.

`redact` removes the userinfo of every URL in a text: `EnvspecError` applies it to its message,
context and hint, the CLI's log handler to every line, the process edge to a child's output,
so a secret quoted anywhere still never reaches a person. ssh's bare user name (``git@``) names
an account, not a secret, and is kept.

Written here rather than taken from pdm (whose `HiddenText` is the model for `SecretURL`):
pdm's is internal to pdm, and the whole of it is a dataclass and one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

# A URL's userinfo: `scheme://user[:password]@`, up to the last `@` before the host's `/`.
# Whitespace is allowed in it: a mangled requirement (`https://tok; x:secret@host/`) must not
# leak its secret either, and over-redacting a message is the safe side.
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/?#'\"\n]*)@")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it removed (an ssh account name kept)."""
    if "@" not in text:  # most texts hold no userinfo at all: skip the expression
        return text
    return _USERINFO.sub(_strip, text)


def _strip(found: re.Match[str]) -> str:
    scheme, userinfo = found[1], found[2]
    if scheme.lower().rstrip(":/").endswith("ssh") and ":" not in userinfo:
        return found[0]
    return scheme


class UnsetVariable(Exception):
    """A `${VAR}` reference to a variable the environment does not set; the edge that read
    the text words the error (it knows where the text came from)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def expand(text: str, environ: Mapping[str, str]) -> str:
    """`text` with each `${VAR}` replaced from `environ`; `UnsetVariable` for a missing one."""

    def value(found: re.Match[str]) -> str:
        if found[1] not in environ:
            raise UnsetVariable(found[1])
        return environ[found[1]]

    return _VARIABLE.sub(value, text)


def variables(text: str) -> list[str]:
    """The names of the ``${VAR}`` references in `text`, each once, in order."""
    return list(dict.fromkeys(_VARIABLE.findall(text)))


@dataclass(frozen=True, slots=True)
class SecretURL:
    """A URL that may carry credentials. Shown (`str`, `repr`) only as `public`."""

    secret: str = field(repr=False)
    public: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", redact(self.secret))

    def __str__(self) -> str:
        return self.public

    def login(self) -> tuple[str, str] | None:
        """The user name and password the URL carries (unquoted), or None."""
        parts = urlsplit(self.secret)
        if parts.username is None and parts.password is None:
            return None
        return unquote(parts.username or ""), unquote(parts.password or "")

    def with_login(self, username: str, password: str) -> SecretURL:
        """This URL with `username:password` as its userinfo, when it carries none itself."""
        parts = urlsplit(self.secret)
        if parts.username is not None or not (username or password):
            return self
        login = f"{quote(username, safe='')}:{quote(password, safe='')}"
        return SecretURL(urlunsplit(parts._replace(netloc=f"{login}@{parts.netloc}")))
