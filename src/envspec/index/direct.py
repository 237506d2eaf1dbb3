"""Direct references (`name @ URL`, PEP 440/508): which kind of source a URL names. Pure.

- git: `git+https://…`, `git+ssh://…`, `git+file:///…`, `git+git://…`, each with an optional
  `@revision` (a branch, a tag or a commit id) at the end of the path;
- an archive: an `http(s)://` or `file://` URL of a wheel or an sdist, with an optional
  `#sha256=<hex>` the downloaded file must match.

Refused, each with its own message: other version control systems, git subdirectories (a lock
entry has no place for one yet), and local folders (their content has no hash to lock: a
`git+file://` URL or a built archive locks the same code reproducibly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from envspec.errors import MetadataError
from envspec.model import Artifact, ArtifactKind
from envspec.secret import redact

ARCHIVES = (".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz")
_VCS = ("hg+", "svn+", "bzr+")
_GIT_SCHEMES = ("https", "http", "ssh", "file", "git")


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectRef:
    """A parsed direct reference. `url` is the URL as required (two requirements name the
    same source when their URLs are equal); `location` is the repository or file URL."""

    url: str
    kind: Literal["git", "archive"]
    location: str
    revision: str | None = None
    sha256: str | None = None

    @property
    def shown(self) -> str:
        """The URL as messages show it: credentials removed."""
        return redact(self.url)

    @property
    def public_location(self) -> str:
        """The repository or file URL as locks record it: credentials removed."""
        return redact(self.location)

    def artifact(self) -> Artifact:
        """The archive as an artifact (an archive reference only)."""
        filename = unquote(urlsplit(self.location).path.rsplit("/", 1)[-1])
        kind: ArtifactKind = "wheel" if filename.endswith(".whl") else "sdist"
        # Credentials for a file host come from netrc, as for index files.
        return Artifact(filename=filename, url=self.public_location, kind=kind, sha256=self.sha256)


def parse_direct(url: str) -> DirectRef:
    """The kind and parts of a direct reference URL; `MetadataError` for what cannot be locked."""
    lowered = url.lower()
    if lowered.startswith("git+"):
        return _git(url)
    if lowered.startswith(_VCS):
        raise MetadataError(f"{redact(url)}: only git sources are supported")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file"):
        raise MetadataError(
            f"{redact(url)}: unsupported URL scheme '{parts.scheme}'",
            hint="use git+https://, git+ssh://, git+file://, or an http(s)/file URL of an archive",
        )
    sha256 = _fragment(parts.fragment, url).get("sha256")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise MetadataError(f"{redact(url)}: invalid #sha256= fragment")
    location = urlunsplit(parts._replace(fragment=""))
    if not parts.path.lower().endswith(ARCHIVES):
        if parts.scheme == "file":
            raise MetadataError(
                f"{redact(url)}: local folders cannot be locked (their content has no hash)",
                hint="use git+file://… for a repository, or the URL of a built wheel or sdist",
            )
        raise MetadataError(
            f"{redact(url)}: not a wheel or an sdist (expected one of {', '.join(ARCHIVES)})"
        )
    return DirectRef(
        url=url, kind="archive", location=location, sha256=sha256.lower() if sha256 else None
    )


def _git(url: str) -> DirectRef:
    parts = urlsplit(url[4:])
    if parts.scheme not in _GIT_SCHEMES:
        raise MetadataError(f"{redact(url)}: unsupported git URL scheme '{parts.scheme}'")
    fragment = _fragment(parts.fragment, url)
    if "subdirectory" in fragment:
        raise MetadataError(
            f"{redact(url)}: git subdirectories are not supported",
            hint="point the requirement at a repository whose root is the package",
        )
    path, revision = parts.path, None
    if "@" in path:
        path, _, revision = path.rpartition("@")
        if not revision:
            raise MetadataError(f"{redact(url)}: empty revision after '@'")
    location = urlunsplit(parts._replace(path=path, fragment=""))
    return DirectRef(url=url, kind="git", location=location, revision=revision)


def _fragment(fragment: str, url: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, fragment.split("&")):
        key, sep, value = item.partition("=")
        if not sep:
            raise MetadataError(f"{redact(url)}: invalid URL fragment '{item}'")
        out[key] = value
    return out
