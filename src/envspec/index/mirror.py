"""Index mirrors: fetching an index through another URL while locks record the canonical one, so
a lock made behind a company mirror is the lock anyone else would make.

Where a mirror is set, first found wins per index:
- `ENVSPEC_INDEX_<NAME>_MIRROR` (NAME upper-cased, `-` and `.` as `_`, as for credentials);
- the user config file `config.toml` in `platformdirs.user_config_dir("envspec")` (the
  `ENVSPEC_CONFIG` variable names another), table `[mirrors]`: index name = mirror URL.
Mirror URLs may hold `${ENV}` references and credentials, like index URLs; the index's
`ENVSPEC_INDEX_<NAME>_USERNAME/_PASSWORD` apply to its mirror too.

Pages come from the mirror. Each file URL a mirror page lists is mapped back to its canonical
URL, and only that one reaches the lock:
1. under the mirror URL: the canonical index URL plus the rest
   (`https://m.example/cu121/torch-…whl` → `https://download.pytorch.org/whl/cu121/torch-…whl`);
2. elsewhere on the mirror's host: the canonical site root plus the path below the mirror's
   site root. Site roots are what is left of the two URL paths once their common trailing
   segments are removed (`/pypi/simple/` against `/simple/` → `/pypi/` and `/`); PyPI's
   site root for files is `https://files.pythonhosted.org/`. This is the layout of
   download.pytorch.org and of mirrors that copy a site whole (bandersnatch);
3. on another host: unchanged (the mirror links to the file where it lives).
A file the rules cannot map (a mirror with a layout of its own, such as devpi's `+f/`) is an
error: envspec will not write a mirror-only URL into a lock. `envspec sync` runs the rules
backwards (`Mirror.to_mirror`) to fetch a locked file from the mirror. Backwards, rule 3
cannot be told from rule 2 (a file on the canonical site may have been listed there by a
mirror that links files where they live), so the canonical URL is the second place to try.

The canonical hash of a file is the one the lock being replaced records for the same canonical
URL — the reviewed record. The canonical index is never contacted while a mirror is set: behind
a company mirror it is often unreachable, and a timeout per page would make locking crawl. So:
- the mirror lists a sha256 that differs from the lock's: an error;
- the mirror lists none and the lock has one: the lock's hash (and size) are used, nothing is
  downloaded (installers check the hash against the file they fetch);
- a file the lock does not have yet takes the mirror's hash (listed, else by downloading the
  file from the mirror once), as any new lock entry does; it is reviewed with the lock's diff.

Hand-written: no library maps mirror URLs back to canonical ones; pip and uv record whatever
URL they fetched from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from envspec.errors import IndexError_
from envspec.index.auth import env_prefix, origin
from envspec.model import Artifact, Index
from envspec.secret import UnsetVariable, expand, redact
from envspec.tomlread import loads

log = logging.getLogger(__name__)

CONFIG_ENV = "ENVSPEC_CONFIG"
_FILE_HOSTS = {"https://pypi.org/": "https://files.pythonhosted.org/"}  # site root → files root

KnownFiles = Mapping[str, tuple[str, int | None]]  # canonical URL → (sha256, size)


def mirror_variable(index_name: str) -> str:
    return env_prefix(index_name) + "_MIRROR"


def default_config_path(environ: Mapping[str, str]) -> Path:
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("envspec")) / "config.toml"


def load_mirror_config(path: Path) -> dict[str, str]:
    """The `[mirrors]` table of the user config file ({} when the file does not exist)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise IndexError_(f"cannot read {path}: {exc.strerror}") from exc
    data: dict[str, Any] = loads(text, where=str(path), error=IndexError_)
    table = data.get("mirrors", {})
    if not isinstance(table, dict):
        raise IndexError_("expected a table", context=f"{path}: mirrors")
    for name, url in table.items():
        if not isinstance(url, str):
            raise IndexError_("expected a URL string", context=f"{path}: mirrors.{name}")
    return dict(table)


@dataclass(frozen=True, kw_only=True, slots=True)
class Mirror:
    """One index's mirror: `url` (credential-free, ends with `/`) stands in for `canonical`."""

    index: str
    canonical: str
    url: str
    source: str  # where it was set, for messages: the variable or the config file

    def to_canonical(self, url: str) -> str | None:
        """The canonical URL of a file URL the mirror listed; None when it cannot be told."""
        if url.startswith(self.url):
            return self.canonical + url[len(self.url) :]
        if origin(url) != origin(self.url):
            return url
        mirror_root, canonical_root = _site_roots(self.url, self.canonical)
        parts = urlsplit(url)
        if not parts.path.startswith(mirror_root):
            return None
        site = urlunsplit(urlsplit(self.canonical)._replace(path=canonical_root, query=""))
        site = _FILE_HOSTS.get(site, site)
        rest = parts.path[len(mirror_root) :]
        return site + rest + (f"?{parts.query}" if parts.query else "")

    def to_mirror(self, url: str) -> str:
        """Where the mirror serves the locked file `url`: the rules above, backwards. A file
        outside the canonical index's site is fetched where it is (rule 3)."""
        if url.startswith(self.canonical):
            return self.url + url[len(self.canonical) :]
        mirror_root, canonical_root = _site_roots(self.url, self.canonical)
        site = urlunsplit(urlsplit(self.canonical)._replace(path=canonical_root, query=""))
        site = _FILE_HOSTS.get(site, site)
        if not url.startswith(site):
            return url
        root = urlunsplit(urlsplit(self.url)._replace(path=mirror_root, query=""))
        return root + url[len(site) :]


def _site_roots(mirror: str, canonical: str) -> tuple[str, str]:
    """Both URL paths without their common trailing segments, each ending with `/`."""
    ours = [s for s in urlsplit(mirror).path.split("/") if s]
    theirs = [s for s in urlsplit(canonical).path.split("/") if s]
    while ours and theirs and ours[-1] == theirs[-1]:
        ours.pop()
        theirs.pop()
    return "/" + "".join(f"{s}/" for s in ours), "/" + "".join(f"{s}/" for s in theirs)


class Mirrors:
    """The mirrors of a spec's indexes; maps listed files to canonical ones (thread-safe)."""

    def __init__(self, mirrors: Mapping[str, Mirror], logins: Sequence[Index], known: KnownFiles):
        self._mirrors = dict(mirrors)
        self.logins = tuple(logins)  # mirror URLs with credentials, for `Credentials`
        self._known = known
        self._fetch: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        indexes: Sequence[Index],
        environ: Mapping[str, str],
        known: KnownFiles | None = None,
        config: Path | None = None,
    ) -> Mirrors:
        """The mirrors set for `indexes` (canonical, credential-free URLs) in `environ` or the
        user config file (read only when some index has no mirror variable)."""
        path = config or default_config_path(environ)
        configured: dict[str, str] | None = None
        mirrors: dict[str, Mirror] = {}
        logins: list[Index] = []
        for index in indexes:
            variable = mirror_variable(index.name)
            if environ.get(variable):
                raw, source = environ[variable], variable
            else:
                if configured is None:
                    configured = load_mirror_config(path)
                if index.name not in configured:
                    continue
                raw, source = configured[index.name], f"{path}: mirrors.{index.name}"
            url = _mirror_url(raw, environ, source, index.flat)
            full = Index(name=index.name, url=url, flat=index.flat)
            logins.append(full)
            clean = full.location.public
            mirrors[index.name] = Mirror(
                index=index.name, canonical=index.location.public, url=clean, source=source
            )
            log.info("index %s: fetched through mirror %s", index.name, clean)
        return cls(mirrors, logins, known or {})

    def __bool__(self) -> bool:
        return bool(self._mirrors)

    def page_base(self, index: Index) -> str:
        """Where `index`'s pages are fetched from."""
        mirror = self._mirrors.get(index.name)
        return mirror.url if mirror else index.location.public

    def sources(self, index_url: str | None, url: str) -> tuple[str, ...]:
        """Where to fetch the locked file `url` of index `index_url` (canonical URLs), in
        order: the index's mirror, then `url` itself; only `url` when the index has none."""
        wanted = (index_url or "").rstrip("/")
        for mirror in self._mirrors.values():
            if mirror.canonical.rstrip("/") == wanted:
                there = mirror.to_mirror(url)
                return (there, url) if there != url else (url,)
        return (url,)

    def fetch_url(self, url: str) -> str:
        """The URL to fetch a listed file from (its mirror URL when it came from a mirror)."""
        with self._lock:
            return self._fetch.get(url, url)

    def via(self, artifact: Artifact) -> Artifact:
        fetch = self.fetch_url(artifact.url)
        return artifact if fetch == artifact.url else artifact.with_(url=fetch)

    def canonical(self, index: Index, artifacts: Sequence[Artifact]) -> list[Artifact]:
        """The files a page of `index` listed, with canonical URLs and checked hashes."""
        mirror = self._mirrors.get(index.name)
        if mirror is None:
            return list(artifacts)
        return [self._canonical(mirror, artifact) for artifact in artifacts]

    def _canonical(self, mirror: Mirror, artifact: Artifact) -> Artifact:
        listed = redact(artifact.url)
        url = mirror.to_canonical(listed)
        if url is None:
            raise IndexError_(
                f"mirror {mirror.url} lists {artifact.filename} at {listed}, outside the "
                f"layout of {mirror.canonical}: its canonical URL cannot be told",
                context=mirror.source,
                hint="use a mirror that keeps the canonical index's layout, or lock without it",
            )
        with self._lock:
            self._fetch[url] = artifact.url
        known = self._known.get(url)
        if known is None:
            return artifact.with_(url=url)
        sha256, size = known
        if artifact.sha256 and artifact.sha256 != sha256:
            raise IndexError_(
                f"mirror {mirror.url} lists {artifact.filename} with sha256 {artifact.sha256}, "
                f"but the lock records {sha256} for {url}",
                context=mirror.source,
                hint="the mirror's file is not the canonical one: fix the mirror, or lock "
                f"without it (unset {mirror_variable(mirror.index)})",
            )
        return artifact.with_(url=url, sha256=sha256, size=artifact.size or size)


def _mirror_url(raw: str, environ: Mapping[str, str], source: str, flat: bool) -> str:
    """The mirror's URL, its `${VAR}` references expanded (the one expansion: this is the
    edge that reads it)."""
    try:
        url = expand(raw.strip(), environ)
    except UnsetVariable as unset:
        raise IndexError_(
            f"environment variable {unset.name} is not set",
            context=source,
            hint=f"set {unset.name} or remove ${{{unset.name}}} from the index URL",
        ) from None
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https", "file") or (scheme != "file" and not urlsplit(url).netloc):
        raise IndexError_(
            f"'{redact(url)}' is not an http(s) or file URL",
            context=source,
            hint="give the mirror's index URL, e.g. https://mirror.example.com/whl/cu121",
        )
    return url if flat or url.endswith("/") else url + "/"
