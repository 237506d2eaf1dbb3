"""A bundle: a static package index of exactly the files some locks name, written by
`envspec bundle` (`commands/bundle.py`) and installed from by `envspec sync --bundle`. This
module owns the bundle's layout and manifest format, and reads a bundle back: it is in the
index layer because reading one talks HTTP; the writer is in the commands layer because it
takes its files from the artifact store (the apply layer, which the index layer may not import).

Layout, every path relative to the bundle's root, so that a folder, any static HTTP server, an
object store or a CDN serves it as it is (no server-side logic, no absolute URL inside):
- `bundle.json`: the manifest (`Manifest`): the locks it was made from (with their sha256 and
  the phases chosen), every file with its sha256, size, canonical URL and index, its
  requires-python and `.metadata` sidecar, and the locks it serves; the packages left out
  (git sources) and why;
- `files/<sha256>/<filename>` and, beside it, `<filename>.metadata` (PEP 658/714): keyed by
  hash, so two different files of one name (two indexes) never collide;
- `simple/index.html` and `simple/<project>/index.html` (PEP 503), `index.json` beside each
  (PEP 691, for a server that negotiates it; a plain static server serves the HTML);
- `locks/pylock.<target>.toml` (`pylock.<target>-<variant>.toml`): byte-for-byte copies of
  the locks;
- `install/requirements.<target>.txt` and `install/pylock.<target>.toml`: the same pins for
  pip and uv without envspec (see `commands/bundle_pages.py`).

`BundleFiles` is the artifact store's `Downloader` for `sync --bundle`: it reads the manifest
once, then fetches each locked file (named by its canonical URL) from `files/`, checking the
sha256 the manifest records; the store checks the lock's. It contacts the bundle's host and no
other. Credentials: the bundle URL's userinfo, `ENVSPEC_INDEX_BUNDLE_USERNAME/_PASSWORD`, or
netrc, as for an index named `bundle`.

Errors (`IndexError_`, exit 1): ``no bundle at URL: bundle.json is missing`` ·
``URL: not a bundle manifest (…)`` · ``URL: bundle format N is newer than this envspec
reads (1)``; `bundle_location` refuses a `--bundle` that is neither a folder nor an
http(s)/file URL (`UsageError`, exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from envspec.errors import IndexError_, UsageError
from envspec.index.auth import Credentials
from envspec.index.http import Client, Downloaded, FileMissing, Progress
from envspec.model import Index, pylock_name
from envspec.secret import SecretURL

MANIFEST = "bundle.json"
FORMAT = 1
INDEX_NAME = "bundle"  # the bundle as uv's index, and the ENVSPEC_INDEX_BUNDLE_* credentials


def file_path(sha256: str, filename: str) -> str:
    return f"files/{sha256}/{filename}"


def lock_copy(label: str) -> str:
    """Where the bundle keeps the lock `label` names (`Lock.label`)."""
    return f"locks/{pylock_name(label)}"


@dataclass(frozen=True, kw_only=True, slots=True)
class BundledFile:
    """One file in the bundle, and the locks (`locks/…` paths) that name it."""

    filename: str
    name: str  # normalized project name
    version: str
    sha256: str
    size: int
    url: str  # canonical, as the locks record it
    index: str | None  # canonical index URL; None for a file locked from a URL
    locks: tuple[str, ...]
    requires_python: str | None = None
    metadata_sha256: str | None = None  # of the `.metadata` sidecar, when there is one
    no_metadata: str | None = None  # why there is none (an sdist without static metadata)

    @property
    def path(self) -> str:
        return file_path(self.sha256, self.filename)

    @property
    def metadata_path(self) -> str | None:
        return f"{self.path}.metadata" if self.metadata_sha256 else None


@dataclass(frozen=True, kw_only=True, slots=True)
class BundledLock:
    """A lock the bundle was made from: its copy's path and sha256, and the phases chosen
    (None: every phase)."""

    target: str
    sha256: str
    phases: tuple[str, ...] | None = None

    @property
    def path(self) -> str:
        return lock_copy(self.target)


@dataclass(frozen=True, kw_only=True, slots=True)
class LeftOut:
    """A locked package the bundle cannot carry."""

    lock: str
    name: str
    version: str
    source: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    locks: tuple[BundledLock, ...]
    files: tuple[BundledFile, ...]
    left_out: tuple[LeftOut, ...] = ()


def dump_manifest(manifest: Manifest) -> str:
    """The manifest as `bundle.json` holds it (sorted, so the same bundle gives the same bytes)."""
    data = {
        "format": FORMAT,
        "created-by": "envspec",
        "locks": [
            {
                "target": k.target,
                "path": k.path,
                "sha256": k.sha256,
                "phases": None if k.phases is None else list(k.phases),
            }
            for k in sorted(manifest.locks, key=lambda k: k.target)
        ],
        "files": [_file_json(f) for f in sorted(manifest.files, key=lambda f: f.path)],
        "left-out": [asdict(o) for o in sorted(manifest.left_out, key=lambda o: (o.lock, o.name))],
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _file_json(f: BundledFile) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": f.path, "filename": f.filename, "name": f.name, "version": f.version,
        "sha256": f.sha256, "size": f.size, "url": f.url, "index": f.index,
        "locks": sorted(f.locks), "requires-python": f.requires_python,
        "metadata": {"path": f.metadata_path, "sha256": f.metadata_sha256}
        if f.metadata_sha256 else None,
    }  # fmt: skip
    if f.no_metadata:
        out["no-metadata"] = f.no_metadata
    return out


def parse_manifest(text: str, *, where: str) -> Manifest:
    """`bundle.json` read back and checked; `where` names it in errors."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        found = data.get("format")
        if isinstance(found, int) and found > FORMAT:
            raise IndexError_(
                f"bundle format {found} is newer than this envspec reads ({FORMAT})",
                context=where,
                hint="upgrade envspec, or make the bundle with this one",
            )
        if found != FORMAT:
            raise ValueError(f"format {found!r}")
        return Manifest(
            locks=tuple(_lock(item) for item in data["locks"]),
            files=tuple(_file(item) for item in data["files"]),
            left_out=tuple(LeftOut(**_strings(item, _LEFT_OUT)) for item in data["left-out"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise IndexError_(
            f"not a bundle manifest ({reason})",
            context=where,
            hint="make the bundle again with 'envspec bundle DIR'",
        ) from exc


_LEFT_OUT = ("lock", "name", "version", "source", "reason")


def _strings(item: Mapping[str, Any], keys: Sequence[str]) -> dict[str, str]:
    out = {key.replace("-", "_"): item[key] for key in keys}
    bad = [key for key, value in out.items() if not isinstance(value, str)]
    if bad:
        raise TypeError(f"'{bad[0]}' is not a string")
    return out


def _lock(item: Mapping[str, Any]) -> BundledLock:
    fields = _strings(item, ("target", "sha256"))
    target, phases = fields["target"], item["phases"]
    if item["path"] != lock_copy(target):
        raise ValueError(f"path {item['path']!r} of the lock for {target}")
    if phases is not None and (
        not isinstance(phases, list) or not all(isinstance(p, str) for p in phases)
    ):
        raise TypeError("'phases' is not a list of strings")
    chosen = None if phases is None else tuple(phases)
    return BundledLock(target=target, sha256=fields["sha256"], phases=chosen)


def _file(item: Mapping[str, Any]) -> BundledFile:
    fields = _strings(item, ("filename", "name", "version", "sha256", "url"))
    size, locks, metadata = item["size"], item["locks"], item["metadata"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise TypeError(f"size {size!r} of {fields['filename']}")
    if item["path"] != file_path(fields["sha256"], fields["filename"]):
        raise ValueError(f"path {item['path']!r} of {fields['filename']}")
    optional = {k: item.get(k) for k in ("index", "requires-python", "no-metadata")}
    if not all(v is None or isinstance(v, str) for v in optional.values()):
        raise TypeError(f"a field of {fields['filename']} is not a string")
    return BundledFile(
        **fields,
        size=size,
        index=optional["index"],
        locks=tuple(str(lock) for lock in locks),
        requires_python=optional["requires-python"],
        metadata_sha256=str(metadata["sha256"]) if metadata else None,
        no_metadata=optional["no-metadata"],
    )


# -- reading a bundle ----------------------------------------------------------------------


def bundle_location(text: str) -> SecretURL:
    """`--bundle PATH|URL` as the bundle's root URL (ending in `/`): an http(s) or file URL as
    given, a folder as its file:// URL."""
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https", "file"):
        url = text
    elif len(scheme) <= 1:  # a path (or a Windows drive letter)
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise UsageError(
                f"no bundle folder at {text}",
                context="--bundle",
                hint="give the folder 'envspec bundle' wrote, or the URL it is served at",
            )
        url = folder.resolve().as_uri()
    else:
        raise UsageError(
            f"'{SecretURL(text).public}' is neither a folder nor an http(s) or file URL",
            context="--bundle",
        )
    return SecretURL(url if url.endswith("/") else url + "/")


def is_local(location: SecretURL) -> bool:
    return location.public.startswith("file:")


def bundle_index(location: SecretURL) -> Index:
    """The bundle's simple index, as uv is given it (with the location's credentials)."""
    return Index(name=INDEX_NAME, url=location.secret + "simple/")


def local_folder(location: SecretURL) -> Path:
    return Path(unquote(urlsplit(location.public).path))


class BundleFiles:
    """Downloads locked files from a bundle (see the module docstring); thread-safe."""

    def __init__(self, location: SecretURL, environ: Mapping[str, str]) -> None:
        self.base = location.public
        login = Index(name=INDEX_NAME, url=location.secret)
        self._client = Client(Credentials([login], environ), maxsize=8)
        try:
            self.manifest = self._load()
        except BaseException:
            self._client.close()
            raise
        self._by_url = {f.url: f for f in self.manifest.files}

    def _load(self) -> Manifest:
        url = self.base + MANIFEST
        response = self._client.get(url)
        if response.status in (404, 410):
            raise IndexError_(
                f"no bundle at {self.base}: {MANIFEST} is missing",
                hint="make one with 'envspec bundle DIR' and serve DIR, or give its folder",
            )
        if response.status != 200:
            raise IndexError_(f"GET {url} failed: HTTP {response.status}")
        try:
            text = response.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IndexError_("not a bundle manifest (not UTF-8)", context=url) from exc
        return parse_manifest(text, where=url)

    def download(
        self, url: str, index: str | None, path: Path, progress: Progress | None = None
    ) -> Downloaded:
        """Download the locked file `url` from the bundle into `path`."""
        entry = self._by_url.get(url)
        if entry is None:
            made = ", ".join(k.path for k in self.manifest.locks) or "no lock"
            raise FileMissing(
                f"the bundle at {self.base} does not have it (it was made from {made}): "
                "make it again from this lock"
            )
        source = self.base + entry.path
        got = self._client.download(source, path, progress)
        if got.sha256 != entry.sha256:
            path.unlink(missing_ok=True)
            raise IndexError_(
                f"{source} has sha256 {got.sha256}, the bundle's manifest records "
                f"{entry.sha256}: the bundle is damaged (check it with 'envspec bundle DIR "
                "--check')"
            )
        return got

    def close(self) -> None:
        self._client.close()
